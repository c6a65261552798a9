package dev.taskforce.worker;

/** A priority lane. Quorum queues have no x-max-priority before RabbitMQ 4, so each lane is its own queue. */
public enum Lane {
    HIGH, NORMAL, LOW;

    /** The lane name as used in queue names: {@code high}, {@code normal}, {@code low}. */
    public String wireName() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }

    /** Priority 0-9 onto lanes: 0-3 low, 4-6 normal, 7-9 high (docs/protocol.md). */
    public static Lane forPriority(int priority) {
        if (priority < 0 || priority > 9) {
            throw new IllegalArgumentException("priority must be 0-9, got " + priority);
        }
        if (priority >= 7) {
            return HIGH;
        }
        return priority >= 4 ? NORMAL : LOW;
    }

    /** The lane queue for a job queue name, {@code tf.jobs.<queue>.<lane>}. */
    public String queueName(String queue) {
        return "tf.jobs." + queue + "." + wireName();
    }
}
