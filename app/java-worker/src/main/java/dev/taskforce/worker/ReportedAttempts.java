package dev.taskforce.worker;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The attempts (job id, attempt, generation) whose outcome this worker has published with a
 * confirm. After an orchestrator failover the new leader may publish a dispatch again; a
 * second delivery of an attempt already reported is acked without running it twice, as the
 * Python worker does. Bounded: the oldest attempts are forgotten first.
 */
final class ReportedAttempts {
    private final Map<String, Boolean> keys;

    ReportedAttempts(int capacity) {
        this.keys = new LinkedHashMap<>(256, 0.75f, false) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<String, Boolean> eldest) {
                return size() > capacity;
            }
        };
    }

    private static String key(String jobId, long attempt, long generation) {
        return jobId + "/" + attempt + "/" + generation;
    }

    synchronized void add(String jobId, long attempt, long generation) {
        keys.put(key(jobId, attempt, generation), Boolean.TRUE);
    }

    synchronized boolean contains(JobMessage job) {
        return keys.containsKey(key(job.id(), job.attempt(), job.generation()));
    }
}
