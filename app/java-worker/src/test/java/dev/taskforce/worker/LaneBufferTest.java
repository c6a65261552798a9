package dev.taskforce.worker;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LaneBufferTest {
    private static long tag;

    private static InboundJob job(Lane lane, String queue) {
        return new InboundJob(lane.queueName(queue), lane, ++tag, new byte[0], 0);
    }

    private static InboundJob job(Lane lane) {
        return job(lane, "default");
    }

    @Test
    void priorityMapsOntoLanesAsTheProtocolSays() {
        for (int p = 0; p <= 3; p++) {
            assertEquals(Lane.LOW, Lane.forPriority(p));
        }
        for (int p = 4; p <= 6; p++) {
            assertEquals(Lane.NORMAL, Lane.forPriority(p));
        }
        for (int p = 7; p <= 9; p++) {
            assertEquals(Lane.HIGH, Lane.forPriority(p));
        }
        assertThrows(IllegalArgumentException.class, () -> Lane.forPriority(10));
        assertThrows(IllegalArgumentException.class, () -> Lane.forPriority(-1));
        assertEquals("tf.jobs.default.high", Lane.HIGH.queueName("default"));
        assertEquals("tf.jobs.batch.low", Lane.LOW.queueName("batch"));
    }

    @Test
    void highestLaneStartsFirstAndEachLaneIsFifo() throws Exception {
        LaneBuffer b = new LaneBuffer();
        InboundJob low1 = job(Lane.LOW), norm1 = job(Lane.NORMAL), low2 = job(Lane.LOW),
                high1 = job(Lane.HIGH), norm2 = job(Lane.NORMAL, "batch"), high2 = job(Lane.HIGH, "batch");
        for (InboundJob j : List.of(low1, norm1, low2, high1, norm2, high2)) {
            assertTrue(b.offer(j));
        }
        List<InboundJob> order = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            order.add(b.take());
        }
        assertEquals(List.of(high1, high2, norm1, norm2, low1, low2), order);
        assertNull(b.poll(10, TimeUnit.MILLISECONDS));
    }

    /** A high job arriving behind a low backlog is the next to start, however long the backlog. */
    @Test
    void aLateHighJobOvertakesTheBacklog() throws Exception {
        LaneBuffer b = new LaneBuffer();
        for (int i = 0; i < 1000; i++) {
            b.offer(job(Lane.LOW));
        }
        b.take();
        InboundJob high = job(Lane.HIGH);
        b.offer(high);
        assertEquals(high, b.take());
        assertEquals(998, b.size() - 1, "the other 999 low jobs still wait");
    }

    @Test
    void takeBlocksUntilAJobArrives() throws Exception {
        LaneBuffer b = new LaneBuffer();
        AtomicReference<InboundJob> got = new AtomicReference<>();
        CountDownLatch done = new CountDownLatch(1);
        Thread t = new Thread(() -> {
            try {
                got.set(b.take());
            } catch (InterruptedException ignored) {
                // test ends
            }
            done.countDown();
        });
        t.start();
        assertFalse(done.await(100, TimeUnit.MILLISECONDS));
        InboundJob j = job(Lane.LOW);
        b.offer(j);
        assertTrue(done.await(2, TimeUnit.SECONDS));
        assertEquals(j, got.get());
    }

    @Test
    void closeWakesTakersRefusesNewJobsAndLeavesTheRestToDrain() throws Exception {
        LaneBuffer b = new LaneBuffer();
        InboundJob low = job(Lane.LOW), high = job(Lane.HIGH);
        b.offer(low);
        b.offer(high);
        b.close();
        assertNull(b.take());
        assertFalse(b.offer(job(Lane.HIGH)));
        assertEquals(List.of(high, low), b.drain());
        assertEquals(0, b.size());
    }

    @Test
    void deliveriesFromAnEarlierConnectionAreDiscarded() {
        LaneBuffer b = new LaneBuffer();
        b.offer(new InboundJob("q", Lane.LOW, 1, new byte[0], 0));
        b.offer(new InboundJob("q", Lane.HIGH, 2, new byte[0], 0));
        InboundJob fresh = new InboundJob("q", Lane.LOW, 1, new byte[0], 1);
        b.offer(fresh);
        assertEquals(2, b.discardOlderThan(1));
        assertEquals(List.of(fresh), b.drain());
    }
}
