-- Tables of deploy/pipeline/users-cloudevents.yaml, for compose.yaml's local stack. The
-- collector creates the publication (users_pub) and the slot (deltaforge_users) itself.
create table public.users (
  id bigint generated always as identity primary key,
  email text not null unique,
  created_at timestamptz not null default now()
);
create table public.profiles (
  user_id bigint primary key references public.users (id) on delete cascade,
  display_name text,
  bio text
);
create table public.user_sessions (
  id uuid primary key default gen_random_uuid(),
  user_id bigint not null references public.users (id) on delete cascade,
  started_at timestamptz not null default now(),
  ended_at timestamptz
);
