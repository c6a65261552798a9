package dev.taskforce.worker;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.List;
import java.util.function.LongSupplier;

/**
 * The worker's slots: {@code [worker].slots} threads, each taking the next job from the lane
 * buffer (highest lane first) and running it through the {@link JobRunner}. A slot thread
 * never runs handler code itself, so a stuck handler cannot take a slot away.
 */
final class SlotPool {
    private static final Logger log = LoggerFactory.getLogger(SlotPool.class);

    private final int slots;
    private final LaneBuffer buffer;
    private final JobRunner runner;
    private final LongSupplier currentEpoch;
    private final List<Thread> threads = new ArrayList<>();

    SlotPool(int slots, LaneBuffer buffer, JobRunner runner, LongSupplier currentEpoch) {
        if (slots < 1) {
            throw new IllegalArgumentException("slots must be >= 1");
        }
        this.slots = slots;
        this.buffer = buffer;
        this.runner = runner;
        this.currentEpoch = currentEpoch;
    }

    synchronized void start() {
        for (int i = 1; i <= slots; i++) {
            Thread t = new Thread(this::loop, "tf-slot-" + i);
            t.setDaemon(true);
            threads.add(t);
            t.start();
        }
    }

    /** Waits until every slot has finished its current job and left (after the buffer was closed). */
    boolean awaitExit(long timeoutMillis) throws InterruptedException {
        long deadline = System.currentTimeMillis() + timeoutMillis;
        for (Thread t : snapshot()) {
            long left = deadline - System.currentTimeMillis();
            if (left > 0) {
                t.join(left);
            }
        }
        return snapshot().stream().noneMatch(Thread::isAlive);
    }

    /** Interrupts slots still waiting on a job's outcome; their deliveries stay unacked and are redelivered. */
    void interrupt() {
        snapshot().forEach(Thread::interrupt);
    }

    private synchronized List<Thread> snapshot() {
        return new ArrayList<>(threads);
    }

    private void loop() {
        while (true) {
            InboundJob job;
            try {
                job = buffer.take();
            } catch (InterruptedException e) {
                return;
            }
            if (job == null) {
                return;
            }
            if (job.epoch() < currentEpoch.getAsLong()) {
                log.debug("dropping delivery {} from an earlier connection; the broker redelivers it",
                        job.deliveryTag());
                continue;
            }
            try {
                runner.process(job);
            } catch (RuntimeException | Error e) {
                log.error("slot {}: unexpected error; the slot goes on", Thread.currentThread().getName(), e);
            }
            if (Thread.currentThread().isInterrupted()) {
                return;
            }
        }
    }
}
