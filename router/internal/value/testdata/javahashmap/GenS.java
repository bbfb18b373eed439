// Prints the equal-hash String key sets of TestHstoreOrder and their
// HashMap order (javac GenS.java && java GenS).
import java.util.*;
public class GenS {
    public static void main(String[] a) {
        List<List<String>> cases = new ArrayList<>();
        String[] blocks = {"Aa", "BB"};
        for (int nb : new int[]{4, 5}) {
            List<String> ks = new ArrayList<>();
            for (int m = 0; m < (1 << nb); m++) { StringBuilder sb = new StringBuilder(); for (int b = nb - 1; b >= 0; b--) sb.append(blocks[(m >> b) & 1]); ks.add(sb.toString()); }
            Collections.shuffle(ks, new Random(nb));
            cases.add(ks);
        }
        // equal-hash keys mixed with others
        List<String> mix = new ArrayList<>();
        for (int m = 0; m < 16; m++) { StringBuilder sb = new StringBuilder(); for (int b = 3; b >= 0; b--) sb.append(blocks[(m >> b) & 1]); mix.add(sb.toString()); mix.add("k" + m); }
        cases.add(mix);
        for (List<String> ks : cases) {
            Map<String, String> m = new HashMap<>();
            for (String k : ks) m.put(k, "v");
            System.out.println(String.join("|", ks) + " " + String.join("|", m.keySet()));
        }
    }
}
