package dev.taskforce.worker;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The priority rule end to end, without a broker: the real buffer, slots and runner, fed by a
 * broker stand-in that grants each lane consumer the window the worker asks for, exactly as
 * RabbitMQ's per-consumer {@code basic.qos} does (unacked deliveries count against it, and a
 * running job stays unacked until its outcome is confirmed).
 */
class LaneWindowTest {
    private static final int SLOTS = 4;
    private static final int PREFETCH = 2;
    private static final WorkerConfig.WorkerSection SECTION =
            new WorkerConfig.WorkerSection(List.of("default"), SLOTS, PREFETCH, 30, 2);
    private static final Identity ME = new Identity("t-java-1", "t", "java");

    private final LaneBuffer buffer = new LaneBuffer();
    private final CreditBroker broker = new CreditBroker(SECTION.laneWindow(), buffer);
    private final AtomicInteger running = new AtomicInteger();
    private final AtomicInteger mostRunning = new AtomicInteger();
    private JobRunner runner;
    private SlotPool slots;

    /** A RabbitMQ lane queue per lane, one consumer each, with a per-consumer window. */
    static final class CreditBroker implements Transport {
        private final int window;
        private final LaneBuffer buffer;
        private final Map<Lane, ArrayDeque<byte[]>> ready = new EnumMap<>(Lane.class);
        private final Map<Lane, Integer> unacked = new EnumMap<>(Lane.class);
        private final Map<Long, Lane> laneOfTag = new HashMap<>();
        private final AtomicLong tags = new AtomicLong();
        /** Job ids in the order their {@code started} events were published. */
        final List<String> starts = new ArrayList<>();
        private int startsWhenHighArrived = -1;

        CreditBroker(int window, LaneBuffer buffer) {
            this.window = window;
            this.buffer = buffer;
            for (Lane lane : Lane.values()) {
                ready.put(lane, new ArrayDeque<>());
                unacked.put(lane, 0);
            }
        }

        synchronized void publish(Lane lane, List<byte[]> bodies) {
            if (lane == Lane.HIGH && startsWhenHighArrived < 0) {
                startsWhenHighArrived = starts.size();
            }
            ready.get(lane).addAll(bodies);
            pump();
        }

        private void pump() {
            for (Lane lane : Lane.values()) {
                while (unacked.get(lane) < window && !ready.get(lane).isEmpty()) {
                    long tag = tags.incrementAndGet();
                    laneOfTag.put(tag, lane);
                    unacked.merge(lane, 1, Integer::sum);
                    buffer.offer(new InboundJob(lane.queueName("default"), lane, tag, ready.get(lane).poll(), 0));
                }
            }
        }

        private synchronized void settle(InboundJob job) {
            unacked.merge(laneOfTag.remove(job.deliveryTag()), -1, Integer::sum);
            pump();
        }

        @Override
        public void publishEvent(String routingKey, JsonNode event) {
            if (routingKey.equals("job.started")) {
                synchronized (this) {
                    starts.add(event.get("job_id").asText());
                }
            }
        }

        @Override
        public void deadLetter(InboundJob job, String reason) throws IOException {
            throw new IOException("no malformed messages in this test");
        }

        @Override
        public void ack(InboundJob job) {
            settle(job);
        }

        @Override
        public void nack(InboundJob job, boolean requeue) {
            settle(job);
        }

        @Override
        public long epoch() {
            return 0;
        }

        synchronized List<String> startsSnapshot() {
            return new ArrayList<>(starts);
        }

        synchronized int startsWhenHighArrived() {
            return startsWhenHighArrived;
        }
    }

    private Object work(JsonNode payload, JobContext ctx) throws InterruptedException {
        int now = running.incrementAndGet();
        mostRunning.accumulateAndGet(now, Math::max);
        try {
            Thread.sleep(payload.get("ms").asLong());
            return Map.of();
        } finally {
            running.decrementAndGet();
        }
    }

    private static List<byte[]> jobs(String prefix, int n, int ms) {
        List<byte[]> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(Json.bytes(Jobs.message(prefix + i, "work", Jobs.obj("{\"ms\":" + ms + "}"))));
        }
        return out;
    }

    private void startWorker() {
        runner = new JobRunner(ME, Map.of("work", this::work), broker, new Cancellations(100));
        slots = new SlotPool(SLOTS, buffer, runner, () -> 0L);
        slots.start();
    }

    @AfterEach
    void stop() throws InterruptedException {
        buffer.close();
        if (slots != null) {
            slots.interrupt();
            slots.awaitExit(2_000);
        }
        if (runner != null) {
            runner.shutdownNow();
        }
    }

    private static void await(BooleanSupplier done, String what) throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!done.getAsBoolean()) {
            assertTrue(System.nanoTime() < end, "timed out waiting for " + what);
            Thread.sleep(2);
        }
    }

    @Test
    void theWindowCoversEverySlotPlusPrefetch() {
        assertEquals(SLOTS + PREFETCH, SECTION.laneWindow());
    }

    /** Running jobs hold their delivery unacked, so a window of only `prefetch` would idle the other slots. */
    @Test
    @Timeout(30)
    void aLowBacklogKeepsEverySlotBusy() throws Exception {
        broker.publish(Lane.LOW, jobs("low-", 60, 30));
        startWorker();
        await(() -> broker.startsSnapshot().size() >= 40, "40 low jobs started");
        assertEquals(SLOTS, mostRunning.get(), "jobs running at once under a one-lane backlog");
    }

    /**
     * docs/decisions.md, "Priority lanes": high jobs that arrive behind a low backlog start as
     * slots free, and no low job starts while a high one is waiting for this worker. The only low
     * jobs that may start after the high ones arrived are those a slot had already taken.
     */
    @Test
    @Timeout(30)
    void highJobsOvertakeALowBacklogAsSoonAsSlotsFree() throws Exception {
        broker.publish(Lane.LOW, jobs("low-", 1000, 20));
        startWorker();
        await(() -> broker.startsSnapshot().size() >= 12, "the backlog moving");
        broker.publish(Lane.HIGH, jobs("high-", 10, 40));
        await(() -> broker.startsSnapshot().stream().filter(s -> s.startsWith("high-")).count() == 10,
                "10 high jobs started");

        List<String> starts = broker.startsSnapshot();
        int arrived = broker.startsWhenHighArrived();
        int lastHigh = starts.size() - 1;
        while (!starts.get(lastHigh).startsWith("high-")) {
            lastHigh--;
        }
        long lowInBetween = starts.subList(arrived, lastHigh + 1).stream().filter(s -> s.startsWith("low-")).count();
        assertTrue(lowInBetween <= SLOTS, "low jobs started after 10 high ones arrived and before the last"
                + " of them started: " + lowInBetween + " (at most the " + SLOTS + " a slot had already taken);"
                + " order: " + starts.subList(arrived, lastHigh + 1));
        assertEquals(SLOTS, mostRunning.get(), "jobs running at once");
    }
}
