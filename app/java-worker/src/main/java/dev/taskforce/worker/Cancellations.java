package dev.taskforce.worker;

import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Job ids that the orchestrator cancelled, remembered so that a cancelled job held in a buffer,
 * or redelivered later, never starts. Bounded: the oldest ids are forgotten first.
 */
final class Cancellations {
    private final Map<String, Boolean> ids;

    Cancellations(int capacity) {
        this.ids = new LinkedHashMap<>(256, 0.75f, false) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<String, Boolean> eldest) {
                return size() > capacity;
            }
        };
    }

    synchronized void addAll(Collection<String> jobIds) {
        for (String id : jobIds) {
            ids.remove(id);
            ids.put(id, Boolean.TRUE);
        }
    }

    synchronized boolean contains(String jobId) {
        return ids.containsKey(jobId);
    }

    synchronized int size() {
        return ids.size();
    }
}
