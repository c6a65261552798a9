package dev.taskforce.worker;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** One delivery from start to ack: the order of events and acks, timeouts, cancels, bad input. */
class JobRunnerTest {
    private static final Identity ME = new Identity("t-java-1", "t", "java");
    private final StubTransport stub = new StubTransport();
    private final Map<String, Handler> handlers = new HashMap<>();
    private JobRunner runner;

    private JobRunner runner() {
        if (runner == null) {
            runner = new JobRunner(ME, handlers, stub, new Cancellations(100));
        }
        return runner;
    }

    @AfterEach
    void stop() {
        if (runner != null) {
            runner.shutdownNow();
        }
    }

    /** A handler that never returns and swallows every interrupt. */
    private static Object deaf(JsonNode p, JobContext c) {
        while (true) {
            try {
                Thread.sleep(10_000);
            } catch (InterruptedException ignored) {
                // deliberately deaf
            }
        }
    }

    @Test
    void successPublishesStartedThenSucceededThenAcks() {
        handlers.put("echo", (p, c) -> p);
        InboundJob d = Jobs.delivery(Jobs.message("j1", "echo", Jobs.obj("{\"a\":[1,2]}")));
        runner().process(d);
        assertEquals(List.of("publish job.started j1", "publish job.succeeded j1", "ack " + d.deliveryTag()), stub.log);
        assertEquals(Jobs.obj("{\"a\":[1,2]}"), stub.terminalFor("j1").get("result"));
    }

    /** A dispatch published again after an orchestrator failover must not run the attempt twice. */
    @Test
    void aSecondDeliveryOfAReportedAttemptIsAckedWithoutRunning() {
        AtomicInteger runs = new AtomicInteger();
        handlers.put("echo", (p, c) -> {
            runs.incrementAndGet();
            return p;
        });
        JsonNode msg = Jobs.message("j-dup", "echo", Jobs.obj("1"));
        InboundJob first = Jobs.delivery(msg), again = Jobs.delivery(msg);
        runner().process(first);
        runner().process(again);
        assertEquals(1, runs.get());
        assertEquals(List.of("publish job.started j-dup", "publish job.succeeded j-dup", "ack " + first.deliveryTag(),
                "ack " + again.deliveryTag()), stub.log);

        ObjectNode retry = Jobs.message("j-dup", "echo", Jobs.obj("2"));
        retry.put("attempt", 2);
        runner().process(Jobs.delivery(retry));
        ObjectNode revived = Jobs.message("j-dup", "echo", Jobs.obj("3"));
        revived.put("generation", 1);
        runner().process(Jobs.delivery(revived));
        assertEquals(3, runs.get(), "another attempt, or another generation, is a new run");
    }

    /** An outcome the broker never confirmed was not reported: the redelivery must run again. */
    @Test
    void anUnconfirmedOutcomeDoesNotCountAsReported() {
        AtomicInteger runs = new AtomicInteger();
        handlers.put("echo", (p, c) -> {
            runs.incrementAndGet();
            return p;
        });
        JsonNode msg = Jobs.message("j-unconfirmed", "echo", Jobs.obj("{}"));
        stub.failPublish = rk -> rk.equals("job.succeeded");
        InboundJob first = Jobs.delivery(msg);
        runner().process(first);
        assertEquals(List.of(first.deliveryTag()), stub.requeued);
        stub.failPublish = rk -> false;
        InboundJob again = Jobs.delivery(msg);
        runner().process(again);
        assertEquals(2, runs.get());
        assertEquals("succeeded", stub.terminalFor("j-unconfirmed").get("kind").asText());
        assertEquals(List.of(again.deliveryTag()), stub.acked);
    }

    @Test
    void anExceptionBecomesFailedWithItsSimpleClassName() {
        handlers.put("boom", (p, c) -> {
            throw new IllegalStateException("width must be positive");
        });
        runner().process(Jobs.delivery(Jobs.message("j2", "boom", Jobs.obj("{}"))));
        JsonNode t = stub.terminalFor("j2");
        assertEquals("failed", t.get("kind").asText());
        assertEquals("IllegalStateException", t.at("/error/type").asText());
        assertEquals("width must be positive", t.at("/error/message").asText());
        assertEquals(1, stub.acked.size());
    }

    @Test
    void noAckWithoutAConfirmedOutcome() {
        handlers.put("echo", (p, c) -> p);
        stub.failPublish = rk -> rk.equals("job.succeeded");
        InboundJob d = Jobs.delivery(Jobs.message("j3", "echo", Jobs.obj("{}")));
        runner().process(d);
        assertTrue(stub.acked.isEmpty(), "acked although the outcome was not confirmed");
        assertEquals(List.of(d.deliveryTag()), stub.requeued);
    }

    @Test
    void noStartWithoutAConfirmedStartedEvent() {
        AtomicBoolean ran = new AtomicBoolean();
        handlers.put("echo", (p, c) -> {
            ran.set(true);
            return p;
        });
        stub.failPublish = rk -> rk.equals("job.started");
        runner().process(Jobs.delivery(Jobs.message("j4", "echo", Jobs.obj("{}"))));
        assertFalse(ran.get());
        assertTrue(stub.acked.isEmpty());
        assertEquals(1, stub.requeued.size());
    }

    @Test
    @Timeout(10)
    void aHandlerPastItsTimeoutIsReportedAndAbandoned() {
        handlers.put("hang", JobRunnerTest::deaf);
        var msg = Jobs.message("j5", "hang", Jobs.obj("{}"));
        msg.put("timeout_s", 0.2);
        long t0 = System.nanoTime();
        runner().process(Jobs.delivery(msg));
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(ms >= 200 && ms < 2_000, "took " + ms + " ms");
        JsonNode t = stub.terminalFor("j5");
        assertEquals("Timeout", t.at("/error/type").asText());
        assertEquals(1, stub.acked.size());
        assertEquals(1, runner().abandonedThreads());
        assertTrue(runner().inFlight().isEmpty(), "a timed-out job is no longer in flight");
    }

    @Test
    @Timeout(10)
    void aHandlerThatHonoursTheInterruptIsNotCountedAsAbandoned() throws Exception {
        handlers.put("sleepy", (p, c) -> {
            Thread.sleep(60_000);
            return null;
        });
        var msg = Jobs.message("j6", "sleepy", Jobs.obj("{}"));
        msg.put("timeout_s", 0.1);
        runner().process(Jobs.delivery(msg));
        assertEquals("Timeout", stub.terminalFor("j6").at("/error/type").asText());
        assertEquals(0, runner().abandonedThreads());
    }

    /** The slot, not the handler thread, owns the job: a stuck handler cannot take the slot away. */
    @Test
    @Timeout(20)
    void aStuckHandlerDoesNotBlockItsSlot() throws Exception {
        handlers.put("hang", JobRunnerTest::deaf);
        handlers.put("echo", (p, c) -> p);
        LaneBuffer buffer = new LaneBuffer();
        SlotPool pool = new SlotPool(1, buffer, runner(), stub::epoch);
        pool.start();
        for (int i = 0; i < 3; i++) {
            var hang = Jobs.message("hang" + i, "hang", Jobs.obj("{}"));
            hang.put("timeout_s", 0.2);
            buffer.offer(Jobs.delivery(Json.bytes(hang), Lane.HIGH));
        }
        buffer.offer(Jobs.delivery(Json.bytes(Jobs.message("after", "echo", Jobs.obj("\"still serving\""))), Lane.LOW));
        long deadline = System.currentTimeMillis() + 10_000;
        while (stub.terminalFor("after") == null && System.currentTimeMillis() < deadline) {
            Thread.sleep(20);
        }
        assertNotNull(stub.terminalFor("after"), "the slot never got to the next job");
        assertEquals("succeeded", stub.terminalFor("after").get("kind").asText());
        for (int i = 0; i < 3; i++) {
            assertEquals("Timeout", stub.terminalFor("hang" + i).at("/error/type").asText());
        }
        assertEquals(3, runner().abandonedThreads());
        assertEquals(4, stub.acked.size());
        buffer.close();
        assertTrue(pool.awaitExit(2_000));
    }

    @Test
    @Timeout(20)
    void slotsRunAtMostSlotsJobsAtOnceAndHighestLaneFirst() throws Exception {
        List<String> started = new java.util.concurrent.CopyOnWriteArrayList<>();
        Map<String, CountDownLatch> gates = Map.of("b1", new CountDownLatch(1), "b2", new CountDownLatch(1));
        handlers.put("block", (p, c) -> {
            started.add(c.jobId());
            gates.get(c.jobId()).await(10, TimeUnit.SECONDS);
            return null;
        });
        handlers.put("rec", (p, c) -> {
            started.add(c.jobId());
            return null;
        });
        LaneBuffer buffer = new LaneBuffer();
        SlotPool pool = new SlotPool(2, buffer, runner(), stub::epoch);
        buffer.offer(Jobs.delivery(Json.bytes(Jobs.message("b1", "block", null)), Lane.LOW));
        buffer.offer(Jobs.delivery(Json.bytes(Jobs.message("b2", "block", null)), Lane.LOW));
        pool.start();
        waitFor(() -> started.size() >= 2);
        buffer.offer(Jobs.delivery(Json.bytes(Jobs.message("low", "rec", null)), Lane.LOW));
        buffer.offer(Jobs.delivery(Json.bytes(Jobs.message("normal", "rec", null)), Lane.NORMAL));
        buffer.offer(Jobs.delivery(Json.bytes(Jobs.message("high", "rec", null)), Lane.HIGH));
        Thread.sleep(200);
        assertEquals(2, started.size(), "two slots, so nothing else may start yet: " + started);
        gates.get("b1").countDown();   // one slot frees; b2 keeps the other
        waitFor(() -> started.size() >= 5);
        assertEquals(List.of("high", "normal", "low"), started.subList(2, 5));
        gates.get("b2").countDown();
        buffer.close();
        assertTrue(pool.awaitExit(5_000));
    }

    private static void waitFor(java.util.function.BooleanSupplier cond) throws InterruptedException {
        long deadline = System.currentTimeMillis() + 10_000;
        while (!cond.getAsBoolean() && System.currentTimeMillis() < deadline) {
            Thread.sleep(5);
        }
        assertTrue(cond.getAsBoolean(), "condition not met within 10 s");
    }

    @Test
    void malformedMessagesAreDeadLetteredWithAReasonAndAcked() {
        for (String body : List.of("{not json", "{\"v\":1,\"id\":\"x\"}", "[]")) {
            InboundJob d = Jobs.delivery(body.getBytes(StandardCharsets.UTF_8), Lane.NORMAL);
            runner().process(d);
        }
        var m = Jobs.message("j7", "echo", Jobs.obj("{}"));
        m.put("priority", 12);
        runner().process(Jobs.delivery(m));
        assertEquals(4, stub.deadLetters.size());
        assertEquals(4, stub.acked.size());
        assertTrue(stub.events.isEmpty(), "a malformed message gets no worker event");
        assertTrue(stub.deadLetters.get(0).reason().startsWith("not valid JSON"), stub.deadLetters.get(0).reason());
        assertTrue(stub.deadLetters.get(1).reason().contains("missing required field"), stub.deadLetters.get(1).reason());
        assertTrue(stub.deadLetters.get(3).reason().contains("priority"), stub.deadLetters.get(3).reason());
        assertEquals("tf.jobs.default.normal", stub.deadLetters.get(0).job().sourceQueue());
    }

    @Test
    void anUnknownTypeFailsWithUnknownJobTypeAndIsAcked() {
        handlers.put("echo", (p, c) -> p);
        runner().process(Jobs.delivery(Jobs.message("j8", "resize", Jobs.obj("{}"))));
        assertEquals(1, stub.events.size(), "no started event for a job that cannot start");
        assertEquals("UnknownJobType", stub.terminalFor("j8").at("/error/type").asText());
        assertEquals(1, stub.acked.size());
    }

    @Test
    void aCancelledJobNeverStarts() {
        AtomicBoolean ran = new AtomicBoolean();
        handlers.put("echo", (p, c) -> {
            ran.set(true);
            return p;
        });
        runner().cancel(List.of("j9"));
        runner().process(Jobs.delivery(Jobs.message("j9", "echo", Jobs.obj("{}"))));
        assertFalse(ran.get());
        assertEquals(1, stub.events.size());
        assertEquals("Cancelled", stub.terminalFor("j9").at("/error/type").asText());
        assertEquals(1, stub.acked.size());
    }

    @Test
    @Timeout(10)
    void aRunningHandlerSeesTheCancel() throws Exception {
        CountDownLatch running = new CountDownLatch(1);
        handlers.put("loop", (p, c) -> {
            running.countDown();
            while (true) {
                c.checkCancelled();
                Thread.sleep(5);
            }
        });
        Thread t = new Thread(() -> runner().process(Jobs.delivery(Jobs.message("j10", "loop", Jobs.obj("{}")))));
        t.start();
        assertTrue(running.await(5, TimeUnit.SECONDS));
        assertEquals(List.of("j10"), runner().inFlight());
        runner().cancel(List.of("j10"));
        t.join(5_000);
        assertEquals("Cancelled", stub.terminalFor("j10").at("/error/type").asText());
        assertTrue(runner().inFlight().isEmpty());
    }

    @Test
    void progressIsPublishedClampedAndThrottled() {
        handlers.put("steps", (p, c) -> {
            c.progress(0.25);
            c.progress(0.5);   // within 200 ms of the last: dropped
            c.progress(7);     // clamped to 1.0, and 1.0 always goes out
            return Map.of("done", true);
        });
        runner().process(Jobs.delivery(Jobs.message("j11", "steps", Jobs.obj("{}"))));
        List<JsonNode> events = stub.eventsFor("j11");
        assertEquals(List.of("started", "progress", "progress", "succeeded"),
                events.stream().map(e -> e.get("kind").asText()).toList());
        assertEquals(0.25, events.get(1).get("progress").asDouble());
        assertEquals(1.0, events.get(2).get("progress").asDouble());
        for (JsonNode e : events) {
            assertTrue(Schemas.validate("worker-event", e).isEmpty(), e.toString());
        }
    }

    @Test
    void contextReportsTheDelivery() {
        handlers.put("ctx", (p, c) -> Map.of("id", c.jobId(), "attempt", c.attempt(), "generation", c.generation(),
                "type", c.type(), "worker", c.workerId(), "node", c.node()));
        var m = Jobs.message("j12", "ctx", Jobs.obj("{}"));
        m.put("attempt", 3);
        m.put("generation", 2);
        runner().process(Jobs.delivery(m));
        JsonNode r = stub.terminalFor("j12").get("result");
        assertEquals("j12", r.get("id").asText());
        assertEquals(3, r.get("attempt").asInt());
        assertEquals(2, r.get("generation").asInt());
        assertEquals("t-java-1", r.get("worker").asText());
        assertEquals(3, stub.terminalFor("j12").get("attempt").asInt());
        assertEquals(2, stub.terminalFor("j12").get("generation").asInt());
    }

    @Test
    void laneQueueArgumentsMatchThePythonTopology() {
        assertEquals(Map.of("x-queue-type", "quorum", "x-delivery-limit", 5,
                "x-dead-letter-exchange", "tf.dlx", "x-dead-letter-routing-key", "tf.dead"),
                RabbitTransport.laneQueueArgs());
    }
}
