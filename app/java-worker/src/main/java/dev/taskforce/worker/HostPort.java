package dev.taskforce.worker;

/** A broker address from [amqp].hosts: {@code host}, {@code host:port} or {@code [v6addr]:port}. */
record HostPort(String host, int port) {
    static HostPort parse(String s, int defaultPort) {
        String t = s.trim();
        if (t.isEmpty()) {
            throw new IllegalArgumentException("empty host");
        }
        String host = t;
        String port = null;
        if (t.startsWith("[")) {
            int close = t.indexOf(']');
            if (close < 0) {
                throw new IllegalArgumentException("\"" + s + "\": unclosed [ in an IPv6 address");
            }
            host = t.substring(1, close);
            if (t.length() > close + 1) {
                if (t.charAt(close + 1) != ':') {
                    throw new IllegalArgumentException("\"" + s + "\": expected :port after ]");
                }
                port = t.substring(close + 2);
            }
        } else if (t.indexOf(':') >= 0 && t.indexOf(':') == t.lastIndexOf(':')) {
            host = t.substring(0, t.indexOf(':'));
            port = t.substring(t.indexOf(':') + 1);
        }
        int p = defaultPort;
        if (port != null) {
            try {
                p = Integer.parseInt(port);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("\"" + s + "\": port must be a number");
            }
            if (p < 1 || p > 65535) {
                throw new IllegalArgumentException("\"" + s + "\": port must be 1-65535");
            }
        }
        if (host.isEmpty()) {
            throw new IllegalArgumentException("\"" + s + "\": empty host");
        }
        return new HostPort(host, p);
    }
}
