// Prints testdata/javahashmap/orders.txt: key sets of Shorts and the order
// OpenJDK's HashMap iterates them (javac Gen.java && java Gen > orders.txt).
import java.util.*;
public class Gen {
    public static void main(String[] a) {
        Random r = new Random(42);
        StringBuilder out = new StringBuilder();
        List<int[]> cases = new ArrayList<>();
        // small, random, structured (collisions that make tree bins)
        cases.add(new int[]{1, 9});
        cases.add(new int[]{1, 11, 111});
        for (int n : new int[]{0, 1, 2, 3, 4, 5, 7, 12, 13, 25, 48, 49, 97, 200, 1000}) {
            for (int rep = 0; rep < 3; rep++) {
                TreeSet<Integer> s = new TreeSet<>();
                while (s.size() < n) s.add(1 + r.nextInt(32767));
                cases.add(s.stream().mapToInt(Integer::intValue).toArray());
            }
        }
        for (int step : new int[]{16, 32, 64, 128, 256, 1024}) {
            for (int n : new int[]{8, 9, 10, 12, 20, 40, 70, 100}) {
                TreeSet<Integer> s = new TreeSet<>();
                for (int i = 0; i < n && 1 + i * step <= 32767; i++) s.add(1 + i * step);
                // plus a few random ones
                for (int i = 0; i < n / 3; i++) s.add(1 + r.nextInt(32767));
                cases.add(s.stream().mapToInt(Integer::intValue).toArray());
            }
        }
        for (int[] keys : cases) {
            Map<Short, Double> m = new HashMap<>(keys.length);
            for (int k : keys) m.put((short) k, 1.0);
            StringBuilder in = new StringBuilder(), ord = new StringBuilder();
            for (int k : keys) { if (in.length() > 0) in.append(','); in.append(k); }
            for (Short k : m.keySet()) { if (ord.length() > 0) ord.append(','); ord.append(k); }
            out.append(in).append(' ').append(ord).append('\n');
        }
        System.out.print(out);
    }
}
