package dev.taskforce.worker;

/** What a running handler knows about its job, and how it talks back. */
public interface JobContext {
    /** The job id, as in the job message. */
    String jobId();

    /** The job type. */
    String type();

    /** The attempt number of this delivery, starting at 1. */
    int attempt();

    /** Bumped by an operator's retry of a dead, failed or cancelled job. */
    long generation();

    /** This worker's id, {@code <node>-java-<pid>}. */
    String workerId();

    /** This machine's short name, from the config's {@code node}. */
    String node();

    /**
     * Reports progress between 0.0 and 1.0 (values outside are clamped) as a {@code progress}
     * event. Calls closer together than 200 ms are dropped, except the first and a final 1.0.
     */
    void progress(double fraction);

    /** True once the orchestrator has cancelled this job; the handler may stop early. */
    boolean cancelled();

    /** Throws {@link JobCancelledException} if the job was cancelled. */
    default void checkCancelled() {
        if (cancelled()) {
            throw new JobCancelledException("job " + jobId() + " was cancelled");
        }
    }
}
