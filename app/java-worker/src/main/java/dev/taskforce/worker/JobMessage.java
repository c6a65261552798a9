package dev.taskforce.worker;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;

import java.io.IOException;
import java.util.regex.Pattern;

/**
 * A job message as the orchestrator publishes it to a lane queue (app/schemas/job.schema.json).
 *
 * <p>{@link #parse(byte[])} checks the same rules as the schema, by hand, because the worker
 * jar carries no schema validator; a unit test holds it to agree with the schema on every
 * vector in app/schemas/vectors/job/. Unknown fields are ignored, as the schema allows.
 */
record JobMessage(String id, String type, JsonNode payload, String queue, int priority, int attempt,
                  long generation, int maxAttempts, double timeoutS, long epoch, double submittedAt) {

    static final Pattern JOB_ID = Pattern.compile("^[A-Za-z0-9_-]{1,64}$");
    static final Pattern NAME = Pattern.compile("^[A-Za-z0-9_.-]{1,64}$");
    private static final Pattern LANE_QUEUE = Pattern.compile("^tf\\.jobs\\.[A-Za-z0-9_.-]{1,64}\\.(high|normal|low)$");
    private static final int MAX_REASON = 300;

    Lane lane() {
        return Lane.forPriority(priority);
    }

    long timeoutMillis() {
        return Math.max(1L, Math.round(timeoutS * 1000.0));
    }

    static JobMessage parse(byte[] body) throws MalformedMessageException {
        JsonNode root;
        try {
            root = Json.MAPPER.readTree(body);
        } catch (JsonProcessingException e) {
            throw new MalformedMessageException("not valid JSON: " + oneLine(e.getOriginalMessage()));
        } catch (IOException e) {
            throw new MalformedMessageException("unreadable body: " + oneLine(e.getMessage()));
        }
        if (root == null || root.isMissingNode()) {
            throw new MalformedMessageException("empty body");
        }
        if (!root.isObject()) {
            throw new MalformedMessageException("a job message must be a JSON object, got " + root.getNodeType());
        }
        integer(root, "v", 1, 1);
        String id = string(root, "id", JOB_ID);
        String type = string(root, "type", NAME);
        if (!root.has("payload")) {
            throw new MalformedMessageException("missing required field 'payload'");
        }
        JsonNode payload = root.get("payload");
        String queue = string(root, "queue", NAME);
        int priority = (int) integer(root, "priority", 0, 9);
        int attempt = (int) integer(root, "attempt", 1, Integer.MAX_VALUE);
        long generation = integer(root, "generation", 0, Long.MAX_VALUE);
        int maxAttempts = (int) integer(root, "max_attempts", 1, 100);
        double timeoutS = number(root, "timeout_s");
        if (!(timeoutS > 0 && timeoutS <= 86400)) {
            throw new MalformedMessageException("'timeout_s' must be > 0 and <= 86400, got " + timeoutS);
        }
        long epoch = integer(root, "epoch", 0, Long.MAX_VALUE);
        double submittedAt = number(root, "submitted_at");
        if (submittedAt < 0) {
            throw new MalformedMessageException("'submitted_at' must be >= 0");
        }
        if (root.has("lane_queue")) {
            string(root, "lane_queue", LANE_QUEUE);
        }
        return new JobMessage(id, type, payload, queue, priority, attempt, generation, maxAttempts,
                timeoutS, epoch, submittedAt);
    }

    private static JsonNode required(JsonNode root, String field) throws MalformedMessageException {
        JsonNode n = root.get(field);
        if (n == null) {
            throw new MalformedMessageException("missing required field '" + field + "'");
        }
        return n;
    }

    private static String string(JsonNode root, String field, Pattern pattern) throws MalformedMessageException {
        JsonNode n = required(root, field);
        if (!n.isTextual()) {
            throw new MalformedMessageException("'" + field + "' must be a string, got " + n.getNodeType());
        }
        String s = n.textValue();
        if (!pattern.matcher(s).matches()) {
            throw new MalformedMessageException("'" + field + "' must match " + pattern.pattern() + ", got \""
                    + oneLine(s.length() > 80 ? s.substring(0, 80) + "..." : s) + "\"");
        }
        return s;
    }

    /** JSON Schema's integer: any number with no fractional part (so 5.0 counts, as in Python's jsonschema). */
    private static long integer(JsonNode root, String field, long min, long max) throws MalformedMessageException {
        JsonNode n = required(root, field);
        long value;
        if (n.isIntegralNumber() && n.canConvertToLong()) {
            value = n.longValue();
        } else if (n.isFloatingPointNumber() && n.doubleValue() == Math.rint(n.doubleValue())
                && Math.abs(n.doubleValue()) < 9.0e15) {
            value = (long) n.doubleValue();
        } else if (n.isIntegralNumber()) {
            throw new MalformedMessageException("'" + field + "' is out of range");
        } else {
            throw new MalformedMessageException("'" + field + "' must be an integer, got " + describe(n));
        }
        if (value < min || value > max) {
            String range = min == max ? String.valueOf(min)
                    : max == Long.MAX_VALUE || max == Integer.MAX_VALUE ? ">= " + min : min + "-" + max;
            throw new MalformedMessageException("'" + field + "' must be " + range + ", got " + value);
        }
        return value;
    }

    private static double number(JsonNode root, String field) throws MalformedMessageException {
        JsonNode n = required(root, field);
        if (!n.isNumber()) {
            throw new MalformedMessageException("'" + field + "' must be a number, got " + describe(n));
        }
        return n.doubleValue();
    }

    private static String describe(JsonNode n) {
        String text = n.toString();
        return n.getNodeType().toString().toLowerCase(java.util.Locale.ROOT) + " "
                + (text.length() > 40 ? text.substring(0, 40) + "..." : text);
    }

    static String oneLine(String s) {
        if (s == null) {
            return "";
        }
        String flat = s.replaceAll("[\\r\\n\\t]+", " ").trim();
        return flat.length() > MAX_REASON ? flat.substring(0, MAX_REASON) + "..." : flat;
    }
}
