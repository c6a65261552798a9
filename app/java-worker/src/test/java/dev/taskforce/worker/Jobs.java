package dev.taskforce.worker;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.concurrent.atomic.AtomicLong;

/** Builds job messages and deliveries for the tests. */
final class Jobs {
    private static final AtomicLong TAGS = new AtomicLong();

    private Jobs() {
    }

    static ObjectNode message(String id, String type, JsonNode payload) {
        ObjectNode m = Json.MAPPER.createObjectNode();
        m.put("v", 1);
        m.put("id", id);
        m.put("type", type);
        m.set("payload", payload);
        m.put("queue", "default");
        m.put("priority", 5);
        m.put("attempt", 1);
        m.put("generation", 0);
        m.put("max_attempts", 3);
        m.put("timeout_s", 5.0);
        m.put("epoch", 1);
        m.put("submitted_at", 1700000000.0);
        return m;
    }

    static InboundJob delivery(JsonNode message) {
        return delivery(Json.bytes(message), Lane.NORMAL);
    }

    static InboundJob delivery(byte[] body, Lane lane) {
        return new InboundJob(lane.queueName("default"), lane, TAGS.incrementAndGet(), body, 0);
    }

    static JsonNode obj(String json) {
        try {
            return Json.MAPPER.readTree(json);
        } catch (Exception e) {
            throw new IllegalArgumentException(json, e);
        }
    }
}
