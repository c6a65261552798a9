package dev.taskforce.worker;

import com.fasterxml.jackson.databind.JsonNode;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Takes one delivery from start to acknowledgement, on the calling slot thread: parse (or
 * dead-letter), ack without running an attempt already reported, skip if cancelled, find the
 * handler, publish {@code started}, run the handler on a handler thread under
 * {@code timeout_s}, publish the outcome with a confirm, and only then ack.
 *
 * <p>Handler threads come from an unbounded pool so that a handler which ignores its
 * interrupt after a timeout is simply abandoned: the slot is free again at once and the next
 * job gets a fresh thread. The number of live handler threads is bounded by the slots plus the
 * abandoned ones, which are counted and logged.
 */
final class JobRunner {
    static final String TIMEOUT = "Timeout";
    static final String CANCELLED = "Cancelled";
    static final String UNKNOWN_JOB_TYPE = "UnknownJobType";

    private static final Logger log = LoggerFactory.getLogger(JobRunner.class);
    private static final int PENDING = -1;
    private static final int RUNNING = 0;
    private static final int EXITED = 1;
    private static final int ABANDONED = 2;
    private static final long ABANDON_GRACE_NANOS = 100_000_000L;
    private static final int REMEMBERED_ATTEMPTS = 10_000;

    private final Identity me;
    private final Map<String, Handler> handlers;
    private final Transport transport;
    private final Cancellations cancellations;
    private final ReportedAttempts reported = new ReportedAttempts(REMEMBERED_ATTEMPTS);
    private final ExecutorService handlerThreads;
    private final Map<String, RunningJob> running = new ConcurrentHashMap<>();
    private final AtomicInteger busyHandlerThreads = new AtomicInteger();
    private final AtomicInteger abandoned = new AtomicInteger();

    JobRunner(Identity me, Map<String, Handler> handlers, Transport transport, Cancellations cancellations) {
        this.me = me;
        this.handlers = Map.copyOf(handlers);
        this.transport = transport;
        this.cancellations = cancellations;
        this.handlerThreads = Executors.newCachedThreadPool(daemonThreads("tf-handler-"));
    }

    /** Ids of the jobs whose handlers are running now (heartbeat in_flight). */
    List<String> inFlight() {
        return new ArrayList<>(running.keySet());
    }

    /** Handler threads that outlived their timeout, ignored the interrupt, and have not returned since. */
    int abandonedThreads() {
        return abandoned.get();
    }

    /** Handler threads still executing a handler, abandoned ones included. */
    int busyHandlerThreads() {
        return busyHandlerThreads.get();
    }

    /** Remembers cancelled ids and flags any of them that is running now. */
    void cancel(Collection<String> jobIds) {
        cancellations.addAll(jobIds);
        for (String id : jobIds) {
            RunningJob r = running.get(id);
            if (r != null) {
                log.info("job {}: cancelled while running; the handler sees ctx.cancelled()", id);
                r.cancel();
            }
        }
    }

    void shutdownNow() {
        handlerThreads.shutdownNow();
    }

    /** Handles one delivery to the end. Never throws; a broker failure leaves it unacked for redelivery. */
    void process(InboundJob delivery) {
        JobMessage job;
        try {
            job = JobMessage.parse(delivery.body());
        } catch (MalformedMessageException e) {
            deadLetter(delivery, e.getMessage());
            return;
        }
        if (reported.contains(job)) {
            log.info("job {} attempt {}: delivered again after its outcome was reported; acked, not run twice",
                    job.id(), job.attempt());
            ack(delivery);
            return;
        }
        if (cancellations.contains(job.id())) {
            log.info("job {} attempt {}: cancelled before it started", job.id(), job.attempt());
            finish(delivery, Events.failed(me, job, CANCELLED, "cancelled before it started"));
            return;
        }
        Handler handler = handlers.get(job.type());
        if (handler == null) {
            log.warn("job {}: no handler for type '{}' on this worker (has {})", job.id(), job.type(),
                    handlers.keySet());
            finish(delivery, Events.failed(me, job, UNKNOWN_JOB_TYPE,
                    "no handler for job type '" + job.type() + "' on worker " + me.workerId()));
            return;
        }
        try {
            transport.publishEvent(Events.routingKey(Events.STARTED), Events.started(me, job));
        } catch (IOException | RuntimeException e) {
            giveBack(delivery, job, "could not publish started: " + e);
            return;
        }
        JsonNode outcome = run(job, handler);
        if (outcome != null) {
            finish(delivery, outcome);
        }
    }

    /** Runs the handler under the timeout and returns the terminal event, or null if the slot was interrupted. */
    private JsonNode run(JobMessage job, Handler handler) {
        RunningJob ctx = new RunningJob(job, me, transport);
        running.put(job.id(), ctx);
        if (cancellations.contains(job.id())) {
            ctx.cancel();
        }
        AtomicInteger state = new AtomicInteger(PENDING);
        Future<JsonNode> future = handlerThreads.submit(() -> {
            if (!state.compareAndSet(PENDING, RUNNING)) {
                return null; // timed out before it began
            }
            busyHandlerThreads.incrementAndGet();
            try {
                Object result = handler.handle(job.payload(), ctx);
                return result instanceof JsonNode node ? node : Json.MAPPER.valueToTree(result);
            } finally {
                busyHandlerThreads.decrementAndGet();
                if (!state.compareAndSet(RUNNING, EXITED)) {
                    state.set(EXITED);
                    int left = abandoned.decrementAndGet();
                    log.info("job {}: abandoned handler thread finally returned; {} still abandoned", job.id(), left);
                }
            }
        });
        try {
            JsonNode result = future.get(job.timeoutMillis(), TimeUnit.MILLISECONDS);
            log.info("job {} attempt {}: succeeded", job.id(), job.attempt());
            return Events.succeeded(me, job, result);
        } catch (TimeoutException e) {
            future.cancel(true);
            abandonIfStuck(job, state);
            log.warn("job {} attempt {}: timed out after {} s", job.id(), job.attempt(), job.timeoutS());
            return Events.failed(me, job, TIMEOUT, "handler ran past timeout_s=" + job.timeoutS());
        } catch (ExecutionException e) {
            Throwable cause = e.getCause() == null ? e : e.getCause();
            if (cause instanceof JobCancelledException) {
                log.info("job {} attempt {}: stopped after cancel", job.id(), job.attempt());
                return Events.failed(me, job, CANCELLED, messageOf(cause));
            }
            log.info("job {} attempt {}: failed: {}", job.id(), job.attempt(), cause.toString());
            return Events.failed(me, job, errorType(cause), messageOf(cause));
        } catch (InterruptedException e) {
            future.cancel(true);
            Thread.currentThread().interrupt();
            log.warn("job {}: slot interrupted while the handler ran; leaving it for redelivery", job.id());
            return null;
        } finally {
            ctx.finish();
            running.remove(job.id());
        }
    }

    private void abandonIfStuck(JobMessage job, AtomicInteger state) {
        // A handler that honours the interrupt leaves within moments; one that does not keeps its
        // thread, which is abandoned: the slot goes on at once and the pool makes a new thread.
        if (state.compareAndSet(PENDING, EXITED)) {
            return;
        }
        long deadline = System.nanoTime() + ABANDON_GRACE_NANOS;
        while (state.get() == RUNNING && System.nanoTime() < deadline) {
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        // Count first, so that a thread leaving right after the state change never takes the count below zero.
        int n = abandoned.incrementAndGet();
        if (state.compareAndSet(RUNNING, ABANDONED)) {
            log.warn("job {}: handler ignored the interrupt at its timeout; its thread is abandoned"
                    + " ({} abandoned handler thread(s) now)", job.id(), n);
        } else {
            abandoned.decrementAndGet();
        }
    }

    private void finish(InboundJob delivery, JsonNode event) {
        String kind = event.path("kind").asText();
        try {
            transport.publishEvent(Events.routingKey(kind), event);
        } catch (IOException | RuntimeException e) {
            giveBack(delivery, null, "could not publish " + kind + ": " + e);
            return;
        }
        // Only a confirmed outcome counts as reported: an unconfirmed one is requeued above and must run again.
        reported.add(event.path("job_id").asText(), event.path("attempt").asLong(), event.path("generation").asLong());
        ack(delivery);
    }

    private void ack(InboundJob delivery) {
        try {
            transport.ack(delivery);
        } catch (IOException | RuntimeException e) {
            log.warn("delivery {} from {}: ack failed ({}); the broker will redeliver it",
                    delivery.deliveryTag(), delivery.sourceQueue(), e.toString());
        }
    }

    private void deadLetter(InboundJob delivery, String reason) {
        log.warn("malformed message on {} dead-lettered: {}", delivery.sourceQueue(), reason);
        try {
            transport.deadLetter(delivery, reason);
        } catch (IOException | RuntimeException e) {
            giveBack(delivery, null, "could not dead-letter: " + e);
            return;
        }
        ack(delivery);
    }

    /** The outcome could not be recorded: requeue, so the job runs again (x-delivery-limit bounds that). */
    private void giveBack(InboundJob delivery, JobMessage job, String why) {
        log.warn("delivery {} from {}{}: {}; requeueing it", delivery.deliveryTag(), delivery.sourceQueue(),
                job == null ? "" : " (job " + job.id() + ")", why);
        try {
            transport.nack(delivery, true);
        } catch (IOException | RuntimeException e) {
            log.debug("nack failed too ({}); the broker redelivers when the channel closes", e.toString());
        }
    }

    static String errorType(Throwable t) {
        String simple = t.getClass().getSimpleName();
        return simple.isEmpty() ? t.getClass().getName() : simple;
    }

    private static String messageOf(Throwable t) {
        return t.getMessage() == null ? "" : t.getMessage();
    }

    static ThreadFactory daemonThreads(String prefix) {
        AtomicInteger n = new AtomicInteger();
        return r -> {
            Thread t = new Thread(r, prefix + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }
}
