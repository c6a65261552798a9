package dev.taskforce.worker;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.PrintStream;
import java.math.BigInteger;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The demo job types, with the same semantics and defaults as the Python worker's
 * (taskforce/worker/demo.py),
 * so that app/schemas/vectors/contract/ gives equal results in both languages; plus the
 * Java-only {@code jvm_info}.
 *
 * <p>Each execution prints one JSON line to stdout,
 * {@code {"exec": job_id, "attempt": n, "node": node, "worker_id": id}}, which the drills count.
 * Logs go to stderr, so stdout carries these lines only.
 */
public final class DemoHandlers {
    static volatile PrintStream out = System.out;
    private static final long CANCEL_CHECK_EVERY = 1L << 20;

    private DemoHandlers() {
    }

    /** The demo handlers by job type, each wrapped to print its execution line. */
    public static Map<String, Handler> all() {
        Map<String, Handler> m = new LinkedHashMap<>();
        m.put("noop", DemoHandlers::noop);
        m.put("echo", DemoHandlers::echo);
        m.put("sleep", DemoHandlers::sleep);
        m.put("fail", DemoHandlers::fail);
        m.put("cpu", DemoHandlers::cpu);
        m.put("hang", DemoHandlers::hang);
        m.put("jvm_info", DemoHandlers::jvmInfo);
        Map<String, Handler> logged = new LinkedHashMap<>();
        m.forEach((type, h) -> logged.put(type, logged(h)));
        return logged;
    }

    /** Registers every demo handler on the worker. */
    public static Worker register(Worker worker) {
        all().forEach(worker::handler);
        return worker;
    }

    static Handler logged(Handler h) {
        return (payload, ctx) -> {
            ObjectNode line = Json.MAPPER.createObjectNode();
            line.put("exec", ctx.jobId());
            line.put("attempt", ctx.attempt());
            line.put("node", ctx.node());
            line.put("worker_id", ctx.workerId());
            String text = Json.line(line);
            PrintStream to = out;
            synchronized (to) {
                to.println(text);
                to.flush();
            }
            return h.handle(payload, ctx);
        };
    }

    /** noop: returns {}. */
    static Object noop(JsonNode payload, JobContext ctx) {
        return Json.MAPPER.createObjectNode();
    }

    /** echo: returns the payload unchanged. */
    static Object echo(JsonNode payload, JobContext ctx) {
        return payload;
    }

    /**
     * sleep {seconds=1}: sleeps, reporting progress about once a second, and returns
     * {"slept": seconds} as a float. Stops early with Cancelled if the job is cancelled.
     */
    static Object sleep(JsonNode payload, JobContext ctx) throws InterruptedException {
        double seconds = number(fields(payload), "seconds", 1.0);
        long end = System.nanoTime() + Math.round(seconds * 1e9);
        int steps = 0;
        for (long left; (left = end - System.nanoTime()) > 0; ) {
            if (ctx.cancelled()) {
                throw new JobCancelledException("cancelled cooperatively");
            }
            Thread.sleep(Math.min(100, Math.max(1, left / 1_000_000)));
            if (++steps % 10 == 0) {
                ctx.progress(1 - Math.max(0, end - System.nanoTime()) / (seconds * 1e9));
            }
        }
        ObjectNode out = Json.MAPPER.createObjectNode();
        out.put("slept", seconds);
        return out;
    }

    /**
     * fail {fail_times=2^30, fail_generations=2^30}: raises PlannedFailure("planned failure") while
     * attempt <= fail_times and generation < fail_generations; else returns {"attempt": attempt}.
     */
    static Object fail(JsonNode payload, JobContext ctx) {
        JsonNode p = fields(payload);
        long failTimes = integer(p, "fail_times", 1L << 30);
        long failGenerations = integer(p, "fail_generations", 1L << 30);
        if (ctx.attempt() <= failTimes && ctx.generation() < failGenerations) {
            throw new PlannedFailure("planned failure");
        }
        ObjectNode out = Json.MAPPER.createObjectNode();
        out.put("attempt", ctx.attempt());
        return out;
    }

    /** cpu {n=100000}: {"sum": sum of i*i for i in [0, n)}, exact however large (Python's int has no limit). */
    static Object cpu(JsonNode payload, JobContext ctx) {
        long n = integer(fields(payload), "n", 100_000L);
        ObjectNode out = Json.MAPPER.createObjectNode();
        Number sum = sumOfSquares(n, ctx);
        if (sum instanceof BigInteger big) {
            out.put("sum", big);
        } else {
            out.put("sum", sum.longValue());
        }
        return out;
    }

    /** The payload's fields, read the way Python's {@code (payload or {})} does: an empty or null payload has none. */
    private static JsonNode fields(JsonNode payload) {
        if (payload == null || payload.isNull() || payload.isMissingNode()
                || (payload.isContainerNode() && payload.isEmpty())
                || (payload.isTextual() && payload.textValue().isEmpty())
                || (payload.isBoolean() && !payload.booleanValue())
                || (payload.isNumber() && payload.doubleValue() == 0)) {
            return Json.MAPPER.createObjectNode();
        }
        if (!payload.isObject()) {
            throw new IllegalArgumentException("the payload must be a JSON object, got " + payload.getNodeType());
        }
        return payload;
    }

    /** Like Python's float(x): a number, or a string holding one. */
    private static double number(JsonNode fields, String key, double dflt) {
        JsonNode v = fields.get(key);
        if (v == null) {
            return dflt;
        }
        if (v.isNumber()) {
            return v.doubleValue();
        }
        if (v.isTextual()) {
            try {
                return Double.parseDouble(v.textValue().trim());
            } catch (NumberFormatException e) {
                // fall through to the error below
            }
        }
        throw new IllegalArgumentException("'" + key + "' must be a number, got " + v);
    }

    /** Like Python's int(x): a number (truncated), or a string holding an integer. */
    private static long integer(JsonNode fields, String key, long dflt) {
        JsonNode v = fields.get(key);
        if (v == null) {
            return dflt;
        }
        if (v.isNumber() && (v.canConvertToLong() || v.isFloatingPointNumber())) {
            double d = v.doubleValue();
            if (v.isIntegralNumber()) {
                return v.longValue();
            }
            if (Math.abs(d) < 9.0e18) {
                return (long) d;
            }
        }
        if (v.isTextual()) {
            try {
                return Long.parseLong(v.textValue().trim());
            } catch (NumberFormatException e) {
                // fall through to the error below
            }
        }
        throw new IllegalArgumentException("'" + key + "' must be an integer, got " + v);
    }

    static Number sumOfSquares(long n, JobContext ctx) {
        BigInteger carried = BigInteger.ZERO;
        long acc = 0;
        for (long i = 0; i < n; i++) {
            long sq = Math.multiplyExact(i, i);
            if (acc > Long.MAX_VALUE - sq) {
                carried = carried.add(BigInteger.valueOf(acc));
                acc = 0;
            }
            acc += sq;
            if ((i & (CANCEL_CHECK_EVERY - 1)) == 0 && i > 0) {
                if (Thread.currentThread().isInterrupted()) {
                    throw new IllegalStateException("cpu: interrupted at i=" + i);
                }
                if (ctx != null) {
                    ctx.checkCancelled();
                }
            }
        }
        if (carried.signum() == 0) {
            return acc;
        }
        return carried.add(BigInteger.valueOf(acc));
    }

    /**
     * What {@code fail} raises. A RuntimeException named like the Python demo's exception, so
     * both languages report error type {@code PlannedFailure} and drills can count it alike.
     */
    public static final class PlannedFailure extends RuntimeException {
        public PlannedFailure(String message) {
            super(message);
        }
    }

    /** hang: never returns, and ignores interrupts, so drills can prove the timeout and the slot's recovery. */
    static Object hang(JsonNode payload, JobContext ctx) {
        while (true) {
            try {
                Thread.sleep(60_000);
            } catch (InterruptedException ignored) {
                // Deliberately deaf: a real stuck handler may be, and the worker must survive it.
            }
        }
    }

    /** jvm_info (Java only): {"java_version": ..., "lang": "java"}. */
    static Object jvmInfo(JsonNode payload, JobContext ctx) {
        ObjectNode out = Json.MAPPER.createObjectNode();
        out.put("java_version", System.getProperty("java.version"));
        out.put("lang", Identity.LANG);
        return out;
    }
}
