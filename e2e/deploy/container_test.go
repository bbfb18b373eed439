package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/pgjet/pgjet/shared/pipeline"
)

// images are the Dockerfile's runtime stages (targets): one per binary.
var images = map[string]struct {
	binary      string
	metricsPort int
	scope       pipeline.Scope
}{
	"collector": {"pgjet-collector", collectorMetricsPort, pipeline.ScopeCollector},
	"router":    {"pgjet-router", routerMetricsPort, pipeline.ScopeRouter},
}

func parseDockerfile(t *testing.T, path string) ([]instructions.Stage, []instructions.ArgCommand) {
	t.Helper()
	res, err := parser.Parse(bytes.NewReader(readFile(t, path)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, w := range res.Warnings {
		t.Errorf("%s: %s", path, w.Short)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return stages, metaArgs
}

// TestDockerfile checks deploy/container/Dockerfile: a build stage compiling both
// binaries statically from sources that exist, and for each binary a runtime stage on a
// shell-less base, running as a non-root user with the binary as its entrypoint.
func TestDockerfile(t *testing.T) {
	repo := root(t)
	stages, metaArgs := parseDockerfile(t, filepath.Join(repo, "deploy", "container", "Dockerfile"))

	// GO_VERSION follows go.work's go line (major.minor).
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(readFile(t, filepath.Join(repo, "go.work"))))
	goVersion := ""
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Key == "GO_VERSION" && kv.Value != nil {
				goVersion = *kv.Value
			}
		}
	}
	if goLine == nil || goVersion != goLine[1] {
		t.Errorf("ARG GO_VERSION=%s, but go.work says go %v", goVersion, goLine)
	}

	byName := map[string]instructions.Stage{}
	for _, s := range stages {
		byName[s.Name] = s
	}
	build, ok := byName["build"]
	if !ok {
		t.Fatal("no stage named build")
	}
	if last := stages[len(stages)-1].Name; last != "collector" {
		t.Errorf("the last stage (a plain docker build's image) is %q, want collector", last)
	}

	// The build stage: context paths that exist, every go.work module present, and one
	// static go build of both commands.
	var copied []string
	built := false
	for _, c := range build.Commands {
		switch c := c.(type) {
		case *instructions.CopyCommand:
			if c.From != "" {
				continue
			}
			for _, src := range c.SourcePaths {
				src = strings.TrimSuffix(src, "/")
				if _, err := os.Stat(filepath.Join(repo, src)); err != nil {
					t.Errorf("COPY %s: not in the repository", src)
				}
				copied = append(copied, src)
			}
		case *instructions.RunCommand:
			line := strings.Join(c.CmdLine, " ")
			if !strings.Contains(line, "go build") {
				continue
			}
			built = true
			if !strings.Contains(line, "CGO_ENABLED=0") {
				t.Errorf("RUN %s: not CGO_ENABLED=0 (the runtime images have no libc)", line)
			}
			for _, img := range images {
				pkg := "./" + path.Join(strings.TrimPrefix(img.binary, "pgjet-"), "cmd", img.binary)
				if !strings.Contains(line, pkg) {
					t.Errorf("RUN %s: does not build %s", line, pkg)
				}
				if _, err := os.Stat(filepath.Join(repo, pkg, "main.go")); err != nil {
					t.Errorf("%s: %v", pkg, err)
				}
			}
		}
	}
	if !built {
		t.Error("the build stage runs no go build")
	}
	uses := regexp.MustCompile(`(?m)^\s+\./(\S+)`).FindAllStringSubmatch(string(readFile(t, filepath.Join(repo, "go.work"))), -1)
	if len(uses) == 0 {
		t.Fatal("go.work: no use lines")
	}
	for _, u := range uses {
		if !slices.Contains(copied, u[1]) && !slices.Contains(copied, u[1]+"/go.mod") {
			t.Errorf("go.work uses ./%s, which the build stage does not copy (not even its go.mod)", u[1])
		}
	}
	checkDockerignore(t, filepath.Join(repo, "deploy", "container", "Dockerfile.dockerignore"), append(copied, "collector/cmd", "router/cmd"))

	// The runtime stages.
	for _, target := range sortedKeys(images) {
		img := images[target]
		s, ok := byName[target]
		if !ok {
			t.Errorf("no stage (target) %s", target)
			continue
		}
		if !strings.HasPrefix(s.BaseName, "gcr.io/distroless/static") && s.BaseName != "scratch" {
			t.Errorf("stage %s is FROM %s: want distroless/static or scratch (no shell, no libc)", target, s.BaseName)
		}
		var user string
		var entrypoint []string
		var exposed []string
		binPath := "/usr/local/bin/" + img.binary
		hasBinary := false
		for _, c := range s.Commands {
			switch c := c.(type) {
			case *instructions.UserCommand:
				user = c.User
			case *instructions.EntrypointCommand:
				if c.PrependShell {
					t.Errorf("stage %s: ENTRYPOINT in shell form: the image has no shell", target)
				}
				entrypoint = c.CmdLine
			case *instructions.ExposeCommand:
				exposed = append(exposed, c.Ports...)
			case *instructions.CopyCommand:
				if c.From == "build" && slices.Contains(c.SourcePaths, "/out/"+img.binary) &&
					(c.DestPath == binPath || c.DestPath == "/usr/local/bin/") {
					hasBinary = true
				}
			case *instructions.RunCommand:
				t.Errorf("stage %s: RUN %v: the base image has no shell", target, c.CmdLine)
			}
		}
		uid, _, _ := strings.Cut(user, ":")
		if n, err := strconv.Atoi(uid); err != nil || n == 0 {
			t.Errorf("stage %s: USER %q: want a numeric non-root uid (Kubernetes' runAsNonRoot checks a number)", target, user)
		}
		if !hasBinary {
			t.Errorf("stage %s: no COPY --from=build /out/%s to %s", target, img.binary, binPath)
		}
		if len(entrypoint) != 1 || entrypoint[0] != binPath {
			t.Errorf("stage %s: ENTRYPOINT %q, want [%q]", target, entrypoint, binPath)
		}
		if !slices.Contains(exposed, strconv.Itoa(img.metricsPort)) {
			t.Errorf("stage %s: EXPOSE %v lacks the metrics port %d", target, exposed, img.metricsPort)
		}
	}
}

// checkDockerignore fails when a pattern of the ignore file excludes a path the build
// copies (or a directory above it).
func checkDockerignore(t *testing.T, file string, needed []string) {
	t.Helper()
	for _, line := range strings.Split(string(readFile(t, file)), "\n") {
		pat := strings.TrimSpace(line)
		if pat == "" || strings.HasPrefix(pat, "#") || strings.HasPrefix(pat, "!") {
			continue
		}
		pat = strings.TrimPrefix(pat, "**/")
		for _, p := range needed {
			parts := strings.Split(p, "/")
			for i := range parts {
				prefix := strings.Join(parts[:i+1], "/")
				if m, _ := path.Match(pat, prefix); m {
					t.Errorf("%s: %q excludes %s, which the build copies", filepath.Base(file), line, p)
				}
			}
		}
	}
}

// TestCompose loads deploy/container/compose.yaml with compose-go (the Compose
// specification's schema: unknown keys are errors) and checks the stack: Postgres with
// logical decoding, NATS fsyncing every write, and pgjet services built from the
// Dockerfile's targets, run with flags they have and a pipeline file that loads with their
// environment.
func TestCompose(t *testing.T) {
	repo := root(t)
	dir := filepath.Join(repo, "deploy", "container")
	file := filepath.Join(dir, "compose.yaml")
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: file}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) {
		o.SetProjectName("pgjet", true)
		o.ResolvePaths = true
	})
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	want := []string{"collector", "nats", "postgres", "router"}
	if got := p.ServiceNames(); !slices.Equal(sortedCopy(got), want) {
		t.Fatalf("services %v, want %v", got, want)
	}

	pg := p.Services["postgres"]
	if !slices.Contains(pg.Command, "wal_level=logical") {
		t.Errorf("postgres: command %v does not set wal_level=logical", pg.Command)
	}
	checkBindMounts(t, "postgres", pg)

	// NATS: the image of the nats-server version e2e tests with, its config mounted.
	nats := p.Services["nats"]
	serverVersion := regexp.MustCompile(`(?m)^\s*github.com/nats-io/nats-server/v2 v(\d+\.\d+)\.`).FindStringSubmatch(string(readFile(t, filepath.Join(repo, "e2e", "go.mod"))))
	if serverVersion == nil || !strings.HasPrefix(nats.Image, "nats:"+serverVersion[1]) {
		t.Errorf("nats: image %s, want nats:%v (e2e/go.mod's nats-server)", nats.Image, serverVersion)
	}
	checkBindMounts(t, "nats", nats)
	conf := ""
	for i, a := range nats.Command {
		if (a == "--config" || a == "-c") && i+1 < len(nats.Command) {
			conf = nats.Command[i+1]
		}
	}
	src := mountSource(nats, conf)
	if src == "" {
		t.Errorf("nats: --config %q is not a mounted file", conf)
	} else {
		opts, err := server.ProcessConfigFile(src)
		if err != nil {
			t.Errorf("nats: %s: %v", src, err)
		} else if !opts.JetStream || !opts.SyncAlways {
			t.Errorf("nats: %s: want jetstream with sync_interval: always (JetStream %v, SyncAlways %v)", src, opts.JetStream, opts.SyncAlways)
		}
	}

	dockerfile := filepath.Join(dir, "Dockerfile")
	stages, _ := parseDockerfile(t, dockerfile)
	for _, name := range []string{"collector", "router"} {
		s := p.Services[name]
		img := images[name]
		where := "compose " + name
		if s.Build == nil || s.Build.Context != repo || filepath.Join(s.Build.Context, s.Build.Dockerfile) != dockerfile || s.Build.Target != name {
			t.Errorf("%s: build %+v, want the repository root, deploy/container/Dockerfile, target %s", where, s.Build, name)
		} else if !slices.ContainsFunc(stages, func(st instructions.Stage) bool { return st.Name == s.Build.Target }) {
			t.Errorf("%s: target %s is no stage of the Dockerfile", where, s.Build.Target)
		}
		if s.User == "root" || s.User == "0" || strings.HasPrefix(s.User, "0:") {
			t.Errorf("%s: runs as %s", where, s.User)
		}
		if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") || !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
			t.Errorf("%s: want read_only, cap_drop ALL and no-new-privileges", where)
		}
		checkBindMounts(t, where, s)
		checkArgs(t, where+" command", img.binary, s.Command)
		env := map[string]string{}
		for k, v := range s.Environment {
			if v != nil {
				env[k] = *v
			}
		}
		checkEnvNames(t, where+" environment", img.binary, env)
		if want := fmt.Sprintf("0.0.0.0:%d", img.metricsPort); env["PGJET_METRICS"] != want {
			t.Errorf("%s: PGJET_METRICS=%s, want %s", where, env["PGJET_METRICS"], want)
		}
		published := false
		for _, port := range s.Ports {
			if port.Target == uint32(img.metricsPort) {
				published = true
				if port.HostIP != "127.0.0.1" {
					t.Errorf("%s: metrics port published on %q, want 127.0.0.1", where, port.HostIP)
				}
			}
		}
		if !published {
			t.Errorf("%s: metrics port %d not published", where, img.metricsPort)
		}

		// The pipeline file: --config names a mounted file, which loads with the service's
		// environment, and the binary accepts it.
		i := slices.Index(s.Command, "--config")
		if i < 0 || i+1 >= len(s.Command) {
			t.Errorf("%s: no --config in command %v", where, s.Command)
			continue
		}
		src := mountSource(s, s.Command[i+1])
		if src == "" {
			t.Errorf("%s: --config %s is not a mounted file", where, s.Command[i+1])
			continue
		}
		loadPipeline(t, where+" "+filepath.Base(src), readFile(t, src), env, img.scope)
		checkConfig(t, where, img.binary, src, env)
	}
	if _, ok := p.Services["collector"].DependsOn["postgres"]; !ok {
		t.Error("compose collector: does not depend on postgres")
	}
}

// mountSource is the host file bind-mounted at target in s ("" if none).
func mountSource(s types.ServiceConfig, target string) string {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == target {
			return v.Source
		}
	}
	return ""
}

// checkBindMounts fails on a bind mount whose host file is not in the repository.
func checkBindMounts(t *testing.T, where string, s types.ServiceConfig) {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if _, err := os.Stat(v.Source); err != nil {
			t.Errorf("%s: bind mount %s: %v", where, v.Source, err)
		}
		if !v.ReadOnly {
			t.Errorf("%s: bind mount %s is writable", where, v.Source)
		}
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
