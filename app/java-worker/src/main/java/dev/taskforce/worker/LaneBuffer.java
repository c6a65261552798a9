package dev.taskforce.worker;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Deliveries that have arrived but not started. Each lane consumer's window (slots plus
 * prefetch, running jobs included) bounds what can sit here; a free slot always takes from the
 * highest non-empty lane, oldest first, so a high job never waits behind a low backlog for
 * longer than the jobs already running.
 */
final class LaneBuffer {
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition notEmpty = lock.newCondition();
    private final Map<Lane, ArrayDeque<InboundJob>> lanes = new EnumMap<>(Lane.class);
    private boolean closed;

    LaneBuffer() {
        for (Lane lane : Lane.values()) {
            lanes.put(lane, new ArrayDeque<>());
        }
    }

    /** Adds a delivery; false once the buffer is closed, and the caller must hand it back to the broker. */
    boolean offer(InboundJob job) {
        lock.lock();
        try {
            if (closed) {
                return false;
            }
            lanes.get(job.lane()).addLast(job);
            notEmpty.signal();
            return true;
        } finally {
            lock.unlock();
        }
    }

    /** The next job to start, highest lane first; blocks while empty; null once closed. */
    InboundJob take() throws InterruptedException {
        lock.lock();
        try {
            while (true) {
                if (closed) {
                    return null;
                }
                InboundJob next = pollLocked();
                if (next != null) {
                    return next;
                }
                notEmpty.await();
            }
        } finally {
            lock.unlock();
        }
    }

    /** Like {@link #take()} but gives up after the timeout and returns null. */
    InboundJob poll(long timeout, TimeUnit unit) throws InterruptedException {
        long nanos = unit.toNanos(timeout);
        lock.lock();
        try {
            while (!closed) {
                InboundJob next = pollLocked();
                if (next != null) {
                    return next;
                }
                if (nanos <= 0) {
                    return null;
                }
                nanos = notEmpty.awaitNanos(nanos);
            }
            return null;
        } finally {
            lock.unlock();
        }
    }

    /** Stops handing out jobs and wakes every waiting slot; {@link #drain()} then returns what was left. */
    void close() {
        lock.lock();
        try {
            closed = true;
            notEmpty.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Removes and returns everything buffered, highest lane first. */
    List<InboundJob> drain() {
        lock.lock();
        try {
            List<InboundJob> out = new ArrayList<>();
            for (Lane lane : Lane.values()) {
                out.addAll(lanes.get(lane));
                lanes.get(lane).clear();
            }
            return out;
        } finally {
            lock.unlock();
        }
    }

    /** Drops deliveries from an earlier connection: their tags are void and the broker redelivers them. */
    int discardOlderThan(long epoch) {
        lock.lock();
        try {
            int n = 0;
            for (ArrayDeque<InboundJob> q : lanes.values()) {
                int before = q.size();
                q.removeIf(j -> j.epoch() < epoch);
                n += before - q.size();
            }
            return n;
        } finally {
            lock.unlock();
        }
    }

    /** What is buffered now, highest lane first, without removing it. */
    List<InboundJob> snapshot() {
        lock.lock();
        try {
            List<InboundJob> out = new ArrayList<>();
            for (Lane lane : Lane.values()) {
                out.addAll(lanes.get(lane));
            }
            return out;
        } finally {
            lock.unlock();
        }
    }

    int size() {
        lock.lock();
        try {
            return lanes.values().stream().mapToInt(ArrayDeque::size).sum();
        } finally {
            lock.unlock();
        }
    }

    private InboundJob pollLocked() {
        for (Lane lane : Lane.values()) {
            InboundJob j = lanes.get(lane).pollFirst();
            if (j != null) {
                return j;
            }
        }
        return null;
    }
}
