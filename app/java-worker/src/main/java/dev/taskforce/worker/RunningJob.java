package dev.taskforce.worker;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;

/** The {@link JobContext} of one attempt while its handler runs. */
final class RunningJob implements JobContext {
    private static final Logger log = LoggerFactory.getLogger(RunningJob.class);
    private static final long PROGRESS_INTERVAL_NANOS = 200_000_000L;

    private final JobMessage job;
    private final Identity me;
    private final Transport transport;
    private volatile boolean cancelled;
    private volatile boolean finished;
    private long lastProgressNanos;
    private boolean progressSent;

    RunningJob(JobMessage job, Identity me, Transport transport) {
        this.job = job;
        this.me = me;
        this.transport = transport;
    }

    JobMessage job() {
        return job;
    }

    @Override
    public String jobId() {
        return job.id();
    }

    @Override
    public String type() {
        return job.type();
    }

    @Override
    public int attempt() {
        return job.attempt();
    }

    @Override
    public long generation() {
        return job.generation();
    }

    @Override
    public String workerId() {
        return me.workerId();
    }

    @Override
    public String node() {
        return me.node();
    }

    @Override
    public boolean cancelled() {
        return cancelled;
    }

    void cancel() {
        cancelled = true;
    }

    /** After this, progress calls (say from an abandoned handler thread) publish nothing. */
    void finish() {
        finished = true;
    }

    @Override
    public void progress(double fraction) {
        if (Double.isNaN(fraction)) {
            throw new IllegalArgumentException("progress must be a number between 0.0 and 1.0, got NaN");
        }
        double p = Math.max(0.0, Math.min(1.0, fraction));
        synchronized (this) {
            long now = System.nanoTime();
            if (finished || (progressSent && p < 1.0 && now - lastProgressNanos < PROGRESS_INTERVAL_NANOS)) {
                return;
            }
            lastProgressNanos = now;
            progressSent = true;
        }
        try {
            transport.publishEvent(Events.routingKey(Events.PROGRESS), Events.progress(me, job, p));
        } catch (IOException | RuntimeException e) {
            log.debug("job {}: progress event not sent: {}", job.id(), e.toString());
        }
    }
}
