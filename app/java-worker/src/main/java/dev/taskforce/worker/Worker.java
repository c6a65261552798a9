package dev.taskforce.worker;

import com.fasterxml.jackson.databind.JsonNode;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.math.BigDecimal;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * A TaskForce worker: register a handler per job type, then run.
 *
 * <pre>{@code
 * Worker w = Worker.fromConfig(Path.of("/etc/taskforce/taskforce.toml"));
 * w.handler("echo", (payload, ctx) -> payload);
 * w.run();   // blocks until SIGTERM (or shutdown())
 * }</pre>
 *
 * <p>It consumes the three lane queues of each {@code [worker].queues} entry, starts the
 * highest lane first, runs at most {@code [worker].slots} jobs at once, and speaks the wire
 * protocol of docs/protocol.md. On SIGTERM it stops consuming, requeues what it had not
 * started, lets running jobs finish within {@code grace_s}, and closes.
 */
public final class Worker {
    private static final Logger log = LoggerFactory.getLogger(Worker.class);
    private static final int REMEMBERED_CANCELS = 10_000;

    private final WorkerConfig config;
    private final Identity me;
    private final Map<String, Handler> handlers = new LinkedHashMap<>();
    private final LaneBuffer buffer = new LaneBuffer();
    private final CountDownLatch stopped = new CountDownLatch(1);
    private final Object lifecycle = new Object();
    private final BigDecimal startedAt = Json.now();

    private volatile boolean stopping;
    private boolean started;
    private boolean running;
    private boolean finished;
    private RabbitTransport transport;
    private JobRunner runner;
    private SlotPool slots;
    private ScheduledExecutorService heartbeats;

    private Worker(WorkerConfig config) {
        this.config = Objects.requireNonNull(config, "config");
        this.me = Identity.forNode(config.node());
    }

    /** Reads the TOML config (with TASKFORCE_* environment overrides). */
    public static Worker fromConfig(Path path) throws ConfigException {
        return new Worker(WorkerConfig.load(path));
    }

    public static Worker fromConfig(WorkerConfig config) {
        return new Worker(config);
    }

    /** Registers the handler for a job type; the last registration for a type wins. */
    public Worker handler(String type, Handler handler) {
        Objects.requireNonNull(handler, "handler");
        if (type == null || !JobMessage.NAME.matcher(type).matches()) {
            throw new IllegalArgumentException("job type must match " + JobMessage.NAME.pattern() + ", got " + type);
        }
        synchronized (lifecycle) {
            if (started) {
                throw new IllegalStateException("register handlers before run()");
            }
            handlers.put(type, handler);
        }
        return this;
    }

    public String workerId() {
        return me.workerId();
    }

    public WorkerConfig config() {
        return config;
    }

    /** Connects, consumes and runs jobs until {@link #shutdown()} or SIGTERM; then returns. */
    public void run() throws InterruptedException {
        synchronized (lifecycle) {
            if (started) {
                throw new IllegalStateException("run() was already called");
            }
            started = true;
            if (handlers.isEmpty()) {
                log.warn("no handlers registered: every job will fail with UnknownJobType");
            }
            transport = new RabbitTransport(config, me, buffer, this::onControl);
            runner = new JobRunner(me, handlers, transport, new Cancellations(REMEMBERED_CANCELS));
            slots = new SlotPool(config.worker().slots(), buffer, runner, transport::epoch);
        }
        Runtime.getRuntime().addShutdownHook(new Thread(this::shutdown, "tf-shutdown"));
        log.info("worker {} starting: queues {}, slots {}, prefetch {} (a window of {} per lane), types {}",
                me.workerId(), config.worker().queues(), config.worker().slots(), config.worker().prefetch(),
                config.worker().laneWindow(), types());

        if (!transport.connect(() -> stopping)) {
            stopped.await();
            return;
        }
        transport.declareTopology();
        if (!transport.awaitLaneQueues(() -> stopping)) {
            stopped.await();
            return;
        }
        synchronized (lifecycle) {
            if (stopping) {
                return;
            }
            slots.start();
            try {
                transport.startConsuming();
            } catch (IOException e) {
                throw new IllegalStateException("cannot subscribe to the lane queues: " + e.getMessage(), e);
            }
            heartbeats = Executors.newSingleThreadScheduledExecutor(JobRunner.daemonThreads("tf-heartbeat-"));
            long every = Math.max(100L, Math.round(config.worker().heartbeatS() * 1000));
            heartbeats.scheduleAtFixedRate(this::heartbeat, 0, every, TimeUnit.MILLISECONDS);
            running = true;
        }
        log.info("worker {} consuming {}", me.workerId(), transport.laneQueues());
        stopped.await();
    }

    /**
     * Stops gracefully: stop consuming, requeue buffered jobs that have not started, let running
     * ones finish within {@code grace_s}, then close. Idempotent; returns when done.
     */
    public void shutdown() {
        synchronized (lifecycle) {
            if (finished) {
                return;
            }
            stopping = true;
            try {
                if (running) {
                    drainAndClose();
                } else if (transport != null) {
                    transport.close();
                }
            } finally {
                finished = true;
                stopped.countDown();
            }
        }
    }

    private void drainAndClose() {
        long graceMs = Math.round(config.worker().graceS() * 1000);
        log.info("shutting down: stop consuming, requeue unstarted jobs, give running ones {} s", config.worker().graceS());
        transport.stopConsuming();
        buffer.close();
        List<InboundJob> unstarted = buffer.drain();
        int requeued = 0;
        for (InboundJob j : unstarted) {
            try {
                transport.nack(j, true);
                requeued++;
            } catch (IOException | RuntimeException e) {
                log.debug("requeue of delivery {} failed: {}", j.deliveryTag(), e.toString());
            }
        }
        log.info("requeued {} unstarted job(s); waiting for {} running", requeued, runner.inFlight().size());
        try {
            if (!slots.awaitExit(graceMs)) {
                List<String> left = runner.inFlight();
                log.warn("{} job(s) still running after grace_s ({}); leaving them unacked for redelivery",
                        left.size(), left);
                slots.interrupt();
                slots.awaitExit(2_000);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        heartbeats.shutdownNow();
        transport.close();
        runner.shutdownNow();
        log.info("worker {} stopped", me.workerId());
    }

    private void heartbeat() {
        try {
            JsonNode hb = Events.heartbeat(me, types(), config.worker().queues(), config.worker().slots(),
                    inFlight(), startedAt);
            transport.publishHeartbeat(hb);
        } catch (RuntimeException e) {
            log.debug("heartbeat failed: {}", e.toString());
        }
    }

    /** Running jobs, then buffered ones: everything this worker holds unacked (as the Python worker reports). */
    List<String> inFlight() {
        java.util.LinkedHashSet<String> ids = new java.util.LinkedHashSet<>(runner.inFlight());
        for (InboundJob j : buffer.snapshot()) {
            try {
                JsonNode id = Json.MAPPER.readTree(j.body()).path("id");
                if (id.isTextual() && JobMessage.JOB_ID.matcher(id.textValue()).matches()) {
                    ids.add(id.textValue());
                }
            } catch (IOException e) {
                // malformed: it will be dead-lettered, and it is no job anyone waits for
            }
        }
        return new ArrayList<>(ids);
    }

    private List<String> types() {
        synchronized (lifecycle) {
            return new ArrayList<>(new TreeSet<>(handlers.keySet()));
        }
    }

    /** A message from tf.control; only {@code cancel} is defined. */
    void onControl(JsonNode msg) {
        if (!"cancel".equals(msg.path("kind").asText()) || !msg.path("job_ids").isArray()) {
            log.warn("ignoring a control message that is not a cancel: {}",
                    JobMessage.oneLine(msg.toString()));
            return;
        }
        List<String> ids = new ArrayList<>();
        for (JsonNode id : msg.get("job_ids")) {
            if (id.isTextual() && JobMessage.JOB_ID.matcher(id.asText()).matches()) {
                ids.add(id.asText());
            }
        }
        if (!ids.isEmpty()) {
            runner.cancel(ids);
        }
    }
}
