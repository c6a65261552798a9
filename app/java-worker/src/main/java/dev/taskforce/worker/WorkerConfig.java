package dev.taskforce.worker;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.node.TextNode;
import com.fasterxml.jackson.dataformat.toml.TomlMapper;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * The parts of taskforce.toml the Java worker reads: {@code node}, {@code [amqp]} and
 * {@code [worker]} (docs/config.md). Loading mirrors the Python side (taskforce/config.py):
 * the same defaults and limits, and the same {@code TASKFORCE_<SECTION>__<KEY>} overrides,
 * with {@code TASKFORCE_<KEY>} for top-level keys and comma-separated lists.
 */
public record WorkerConfig(String node, Amqp amqp, WorkerSection worker) {

    public static final String DEFAULT_PATH = "/etc/taskforce/taskforce.toml";

    /** {@code [amqp]}. */
    public record Amqp(List<String> hosts, String vhost, String user, String password, int heartbeatS) {
        @Override
        public String toString() {
            return "Amqp[hosts=" + hosts + ", vhost=" + vhost + ", user=" + user + ", heartbeatS=" + heartbeatS + "]";
        }
    }

    /** {@code [worker]}; {@code handlers} is read by Python workers only. */
    public record WorkerSection(List<String> queues, int slots, int prefetch, double graceS, double heartbeatS) {
        /**
         * The per-consumer (per lane queue) window: running jobs stay unacked until their outcome
         * is confirmed, so the window must hold every slot plus {@code prefetch} waiting. A window
         * of {@code prefetch} alone lets a lane run only that many jobs at once, so a burst of
         * high jobs trickles in {@code prefetch} at a time while the other slots keep starting
         * low ones (docs/decisions.md, "Priority lanes").
         */
        public int laneWindow() {
            return slots + prefetch;
        }
    }

    private static final Logger log = LoggerFactory.getLogger(WorkerConfig.class);
    private static final Set<String> LIST_KEYS = Set.of("hosts", "peers", "orchestrators", "queues", "handlers");
    private static final Set<String> AMQP_KEYS = Set.of("hosts", "vhost", "user", "password", "heartbeat_s");
    private static final Set<String> WORKER_KEYS = Set.of("queues", "slots", "prefetch", "handlers", "grace_s",
            "heartbeat_s");

    /** --config if given, else $TASKFORCE_CONFIG, else /etc/taskforce/taskforce.toml. */
    public static Path resolvePath(String cliPath, Map<String, String> env) {
        if (cliPath != null && !cliPath.isEmpty()) {
            return Path.of(cliPath);
        }
        String fromEnv = env.get("TASKFORCE_CONFIG");
        return Path.of(fromEnv != null && !fromEnv.isEmpty() ? fromEnv : DEFAULT_PATH);
    }

    public static WorkerConfig load(Path path) throws ConfigException {
        return load(path, System.getenv());
    }

    public static WorkerConfig load(Path path, Map<String, String> env) throws ConfigException {
        if (!Files.exists(path)) {
            throw new ConfigException("config file " + path + " does not exist; pass --config FILE or set TASKFORCE_CONFIG");
        }
        JsonNode tree;
        try {
            tree = new TomlMapper().readTree(path.toFile());
        } catch (IOException e) {
            throw new ConfigException(path + ": not valid TOML: " + JobMessage.oneLine(e.getMessage()), e);
        }
        if (tree == null || !tree.isObject()) {
            tree = JsonNodeFactory.instance.objectNode();
        }
        ObjectNode data = applyEnv((ObjectNode) tree, env);
        return parse(data, path.toString());
    }

    /** Overlays TASKFORCE_<SECTION>__<KEY>=value (TASKFORCE_<KEY> for top-level keys) onto the file's tree. */
    static ObjectNode applyEnv(ObjectNode data, Map<String, String> env) {
        ObjectNode out = data.deepCopy();
        for (Map.Entry<String, String> e : env.entrySet()) {
            String name = e.getKey();
            if (!name.startsWith("TASKFORCE_") || name.equals("TASKFORCE_CONFIG")) {
                continue;
            }
            String[] parts = name.substring("TASKFORCE_".length()).toLowerCase(Locale.ROOT).split("__", -1);
            String key = parts[parts.length - 1];
            JsonNode value = LIST_KEYS.contains(key) ? list(e.getValue()) : TextNode.valueOf(e.getValue());
            if (parts.length == 1) {
                out.set(key, value);
            } else if (parts.length == 2) {
                JsonNode section = out.get(parts[0]);
                if (section == null || !section.isObject()) {
                    section = out.putObject(parts[0]);
                }
                ((ObjectNode) section).set(key, value);
            }
        }
        return out;
    }

    static WorkerConfig parse(ObjectNode data, String source) throws ConfigException {
        List<String> problems = new ArrayList<>();
        Fields top = new Fields(data, "", problems);
        String node = top.string("node", defaultNode(), 1);

        JsonNode amqpNode = data.get("amqp");
        if (amqpNode == null || !amqpNode.isObject()) {
            throw new ConfigException(source + ": the config has no [amqp] section, which this service needs");
        }
        warnUnknown(amqpNode, "amqp", AMQP_KEYS);
        Fields a = new Fields(amqpNode, "amqp.", problems);
        List<String> hosts = a.list("hosts", List.of("127.0.0.1:5672"), 1, null);
        for (String h : hosts) {
            try {
                HostPort.parse(h, 5672);
            } catch (IllegalArgumentException ex) {
                problems.add("amqp.hosts: " + ex.getMessage());
            }
        }
        Amqp amqp = new Amqp(hosts, a.string("vhost", "taskforce", 1), a.required("user"),
                a.string("password", null, 1), a.integer("heartbeat_s", 10, 1, 600));

        JsonNode workerNode = data.get("worker");
        if (workerNode == null || !workerNode.isObject()) {
            throw new ConfigException(source + ": the config has no [worker] section, which this service needs");
        }
        warnUnknown(workerNode, "worker", WORKER_KEYS);
        Fields w = new Fields(workerNode, "worker.", problems);
        WorkerSection worker = new WorkerSection(
                w.list("queues", List.of("default"), 1, JobMessage.NAME.pattern()),
                w.integer("slots", 4, 1, 256),
                w.integer("prefetch", 2, 1, 1000),
                w.number("grace_s", 30.0, 0.0, false),
                w.number("heartbeat_s", 2.0, 0.0, true));
        if (!problems.isEmpty()) {
            throw new ConfigException(source + ": invalid configuration:\n  " + String.join("\n  ", problems));
        }
        return new WorkerConfig(node, amqp, worker);
    }

    private static void warnUnknown(JsonNode section, String name, Set<String> known) {
        for (Iterator<String> it = section.fieldNames(); it.hasNext(); ) {
            String key = it.next();
            if (!known.contains(key)) {
                log.warn("config: unknown key [{}].{} is ignored", name, key);
            }
        }
    }

    private static ArrayNode list(String csv) {
        ArrayNode arr = JsonNodeFactory.instance.arrayNode();
        for (String s : csv.split(",")) {
            if (!s.isBlank()) {
                arr.add(s.trim());
            }
        }
        return arr;
    }

    /** Like Python's socket.gethostname().split(".")[0]. */
    static String defaultNode() {
        try {
            Path p = Path.of("/proc/sys/kernel/hostname");
            if (Files.isReadable(p)) {
                String h = Files.readString(p, StandardCharsets.UTF_8).trim();
                if (!h.isEmpty()) {
                    return h.split("\\.")[0];
                }
            }
            return InetAddress.getLocalHost().getHostName().split("\\.")[0];
        } catch (IOException | RuntimeException e) {
            return "localhost";
        }
    }

    /** Reads typed values from one TOML table, coercing environment strings, and collects every problem. */
    private static final class Fields {
        private final JsonNode node;
        private final String prefix;
        private final List<String> problems;

        Fields(JsonNode node, String prefix, List<String> problems) {
            this.node = node;
            this.prefix = prefix;
            this.problems = problems;
        }

        String required(String key) {
            JsonNode n = node.get(key);
            if (n == null || n.isNull()) {
                problems.add(prefix + key + ": field required");
                return "";
            }
            return string(key, null, 0);
        }

        String string(String key, String dflt, int minLength) {
            JsonNode n = node.get(key);
            if (n == null || n.isNull()) {
                if (dflt == null) {
                    problems.add(prefix + key + ": field required");
                    return "";
                }
                return dflt;
            }
            if (!n.isValueNode() || n.isBoolean()) {
                problems.add(prefix + key + ": must be a string");
                return "";
            }
            String s = n.asText();
            if (s.length() < minLength) {
                problems.add(prefix + key + ": must not be empty");
            }
            return s;
        }

        int integer(String key, int dflt, int min, int max) {
            JsonNode n = node.get(key);
            if (n == null || n.isNull()) {
                return dflt;
            }
            long v;
            if (n.isIntegralNumber()) {
                v = n.asLong();
            } else if (n.isTextual() && n.asText().trim().matches("[+-]?\\d{1,10}")) {
                v = Long.parseLong(n.asText().trim());
            } else {
                problems.add(prefix + key + ": must be an integer, got " + n);
                return dflt;
            }
            if (v < min || v > max) {
                problems.add(prefix + key + ": must be between " + min + " and " + max + ", got " + v);
                return dflt;
            }
            return (int) v;
        }

        double number(String key, double dflt, double min, boolean exclusiveMin) {
            JsonNode n = node.get(key);
            if (n == null || n.isNull()) {
                return dflt;
            }
            double v;
            try {
                v = n.isNumber() ? n.asDouble() : Double.parseDouble(n.asText().trim());
            } catch (NumberFormatException e) {
                problems.add(prefix + key + ": must be a number, got " + n);
                return dflt;
            }
            if (Double.isNaN(v) || (exclusiveMin ? v <= min : v < min)) {
                problems.add(prefix + key + ": must be " + (exclusiveMin ? "> " : ">= ") + min + ", got " + v);
                return dflt;
            }
            return v;
        }

        List<String> list(String key, List<String> dflt, int minItems, String pattern) {
            JsonNode n = node.get(key);
            if (n == null || n.isNull()) {
                return dflt;
            }
            if (!n.isArray()) {
                problems.add(prefix + key + ": must be a list");
                return dflt;
            }
            List<String> out = new ArrayList<>();
            for (JsonNode item : n) {
                if (!item.isTextual()) {
                    problems.add(prefix + key + ": every item must be a string, got " + item);
                    continue;
                }
                if (pattern != null && !item.asText().matches(pattern)) {
                    problems.add(prefix + key + ": \"" + item.asText() + "\" must match " + pattern);
                    continue;
                }
                out.add(item.asText());
            }
            if (out.size() < minItems) {
                problems.add(prefix + key + ": needs at least " + minItems + " item(s)");
            }
            return List.copyOf(out);
        }
    }
}
