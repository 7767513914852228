// Reads a gzip file with java.util.zip.GZIPInputStream the way a network stream feeds it: available()
// is always 0 and each read returns at most 16 bytes. Before JDK 23, GZIPInputStream goes on to a next
// gzip member only if available() > 0 or more than 26 bytes of it are already in its buffer (its
// readTrailer), so a multi-member file read like this stops after the first member, without an error:
// the failure that Trino worked around in its release 422. Writes what it read to standard output.
//
// Run with the JDK's single-file launcher: java tests/oracle/GzipAvailableZero.java FILE
import java.io.FileInputStream;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.zip.GZIPInputStream;

public class GzipAvailableZero {
    /** A stream that never says more bytes are available and hands them over 16 at a time. */
    static final class Trickle extends FilterInputStream {
        Trickle(InputStream in) {
            super(in);
        }

        @Override
        public int available() {
            return 0;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            return super.read(b, off, Math.min(len, 16));
        }
    }

    public static void main(String[] args) throws IOException {
        try (InputStream in = new GZIPInputStream(new Trickle(new FileInputStream(args[0])))) {
            in.transferTo(System.out);
        }
        System.out.flush();
    }
}
