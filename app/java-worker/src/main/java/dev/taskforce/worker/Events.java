package dev.taskforce.worker;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.math.BigDecimal;
import java.util.Collection;

/** Builds the messages a worker sends: worker events and heartbeats (docs/protocol.md). */
final class Events {
    static final String STARTED = "started";
    static final String PROGRESS = "progress";
    static final String SUCCEEDED = "succeeded";
    static final String FAILED = "failed";

    private Events() {
    }

    /** The routing key on tf.worker-events for an event of this kind. */
    static String routingKey(String kind) {
        return "job." + kind;
    }

    static ObjectNode started(Identity me, JobMessage job) {
        return base(me, job, STARTED);
    }

    static ObjectNode progress(Identity me, JobMessage job, double fraction) {
        ObjectNode n = base(me, job, PROGRESS);
        n.put("progress", fraction);
        return n;
    }

    static ObjectNode succeeded(Identity me, JobMessage job, JsonNode result) {
        ObjectNode n = base(me, job, SUCCEEDED);
        n.set("result", result == null ? n.nullNode() : result);
        return n;
    }

    static ObjectNode failed(Identity me, JobMessage job, String errorType, String message) {
        ObjectNode n = base(me, job, FAILED);
        ObjectNode error = n.putObject("error");
        error.put("type", errorType == null || errorType.isEmpty() ? "Error" : errorType);
        error.put("message", message == null ? "" : message);
        return n;
    }

    static ObjectNode heartbeat(Identity me, Collection<String> types, Collection<String> queues, int capacity,
                                Collection<String> inFlight, BigDecimal startedAt) {
        ObjectNode n = Json.MAPPER.createObjectNode();
        n.put("v", 1);
        n.put("kind", "heartbeat");
        n.put("worker_id", me.workerId());
        n.put("node", me.node());
        n.put("lang", me.lang());
        strings(n.putArray("types"), types);
        strings(n.putArray("queues"), queues);
        n.put("capacity", capacity);
        strings(n.putArray("in_flight"), inFlight);
        n.put("ts", Json.now());
        n.put("started_at", startedAt);
        return n;
    }

    private static ObjectNode base(Identity me, JobMessage job, String kind) {
        ObjectNode n = Json.MAPPER.createObjectNode();
        n.put("v", 1);
        n.put("kind", kind);
        n.put("job_id", job.id());
        n.put("attempt", job.attempt());
        n.put("generation", job.generation());
        n.put("worker_id", me.workerId());
        n.put("node", me.node());
        n.put("lang", me.lang());
        n.put("ts", Json.now());
        return n;
    }

    private static void strings(ArrayNode array, Collection<String> values) {
        values.forEach(array::add);
    }
}
