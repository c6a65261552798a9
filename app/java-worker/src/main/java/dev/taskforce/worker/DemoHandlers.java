package dev.taskforce.worker;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.PrintStream;
import java.math.BigInteger;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The demo job types, with the same semantics as the Python worker's (taskforce.worker.demo),
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

    /** sleep {seconds}: sleeps, then returns {"slept": seconds} with seconds exactly as given. */
    static Object sleep(JsonNode payload, JobContext ctx) throws InterruptedException {
        JsonNode seconds = payload == null ? null : payload.get("seconds");
        if (seconds == null || !seconds.isNumber() || seconds.asDouble() < 0) {
            throw new IllegalArgumentException("sleep needs a payload {\"seconds\": <number >= 0>}");
        }
        long end = System.nanoTime() + Math.round(seconds.asDouble() * 1e9);
        for (long left; (left = end - System.nanoTime()) > 0; ) {
            ctx.checkCancelled();
            long ms = Math.min(100, Math.max(1, left / 1_000_000));
            Thread.sleep(ms);
        }
        ObjectNode out = Json.MAPPER.createObjectNode();
        out.set("slept", seconds);
        return out;
    }

    /** fail {fail_times: N}: raises "planned failure" while attempt <= N, then returns {"attempt": attempt}. */
    static Object fail(JsonNode payload, JobContext ctx) {
        JsonNode n = payload == null ? null : payload.get("fail_times");
        if (n == null || !n.canConvertToInt() || !n.isIntegralNumber()) {
            throw new IllegalArgumentException("fail needs a payload {\"fail_times\": <integer>}");
        }
        if (ctx.attempt() <= n.asInt()) {
            throw new RuntimeException("planned failure");
        }
        ObjectNode out = Json.MAPPER.createObjectNode();
        out.put("attempt", ctx.attempt());
        return out;
    }

    /** cpu {n}: the sum of i*i for i in [0, n), exact however large (Python's int has no limit either). */
    static Object cpu(JsonNode payload, JobContext ctx) {
        JsonNode nn = payload == null ? null : payload.get("n");
        if (nn == null || !nn.isIntegralNumber() || !nn.canConvertToLong()) {
            throw new IllegalArgumentException("cpu needs a payload {\"n\": <integer>}");
        }
        ObjectNode out = Json.MAPPER.createObjectNode();
        Number sum = sumOfSquares(nn.asLong(), ctx);
        if (sum instanceof BigInteger big) {
            out.put("sum", big);
        } else {
            out.put("sum", sum.longValue());
        }
        return out;
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
