package dev.taskforce.worker;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** What the Java worker sends is valid by the shared schemas, byte for byte as it goes on the wire. */
class EventsTest {
    private static final Identity ME = new Identity("worker1-java-42", "worker1", "java");

    private static JobMessage job() throws Exception {
        ObjectNode m = Jobs.message("3f2a9c1e8b7d4e6fa1b2c3d4e5f60718", "echo", Jobs.obj("{\"a\":1}"));
        m.put("attempt", 2);
        m.put("generation", 3);
        return JobMessage.parse(Json.bytes(m));
    }

    /** Serialise and read back, as the consumer on the other side will. */
    private static JsonNode wire(JsonNode event) throws Exception {
        return Json.MAPPER.readTree(Json.bytes(event));
    }

    private static void assertValid(String schema, JsonNode event) throws Exception {
        JsonNode onWire = wire(event);
        assertTrue(Schemas.validate(schema, onWire).isEmpty(), () -> onWire + " -> " + Schemas.validate(schema, onWire));
    }

    @Test
    void everyWorkerEventKindIsValid() throws Exception {
        JobMessage job = job();
        assertValid("worker-event", Events.started(ME, job));
        assertValid("worker-event", Events.progress(ME, job, 0.0));
        assertValid("worker-event", Events.progress(ME, job, 0.5));
        assertValid("worker-event", Events.progress(ME, job, 1.0));
        assertValid("worker-event", Events.succeeded(ME, job, Jobs.obj("{\"x\":[1,2]}")));
        assertValid("worker-event", Events.succeeded(ME, job, null));
        assertValid("worker-event", Events.succeeded(ME, job, Json.MAPPER.valueToTree(
                java.util.Map.of("sum", new BigInteger("21333325333334000000")))));
        assertValid("worker-event", Events.failed(ME, job, "RuntimeException", "planned failure"));
        assertValid("worker-event", Events.failed(ME, job, "Timeout", null));
        assertValid("worker-event", Events.failed(ME, job, "", ""));
    }

    @Test
    void eventsEchoTheDeliveryAndSayWhoSentThem() throws Exception {
        JsonNode raw = Events.started(ME, job());
        JsonNode e = wire(raw);
        assertEquals("started", e.get("kind").asText());
        assertEquals("3f2a9c1e8b7d4e6fa1b2c3d4e5f60718", e.get("job_id").asText());
        assertEquals(2, e.get("attempt").asInt());
        assertEquals(3, e.get("generation").asInt());
        assertEquals("worker1-java-42", e.get("worker_id").asText());
        assertEquals("java", e.get("lang").asText());
        assertEquals("job.started", Events.routingKey("started"));
        double ts = e.get("ts").asDouble();
        assertTrue(Math.abs(ts - System.currentTimeMillis() / 1000.0) < 5, "ts is Unix seconds");
        String text = new String(Json.bytes(raw), java.nio.charset.StandardCharsets.UTF_8);
        assertTrue(text.matches(".*\"ts\":\\d+\\.\\d{3}[,}].*"), "ts is a plain decimal: " + text);
    }

    @Test
    void failedEventCarriesTypeAndMessage() throws Exception {
        JsonNode e = wire(Events.failed(ME, job(), "IllegalStateException", "boom"));
        assertEquals("IllegalStateException", e.at("/error/type").asText());
        assertEquals("boom", e.at("/error/message").asText());
        assertFalse(e.has("result"));
    }

    @Test
    void heartbeatIsValid() throws Exception {
        BigDecimal started = Json.now();
        assertValid("heartbeat", Events.heartbeat(ME, List.of("echo", "noop"), List.of("default"), 4,
                List.of("3f2a9c1e8b7d4e6fa1b2c3d4e5f60718"), started));
        assertValid("heartbeat", Events.heartbeat(ME, List.of(), List.of("default", "batch"), 1, List.of(), started));
        JsonNode hb = wire(Events.heartbeat(ME, List.of("echo"), List.of("default"), 4, List.of(), started));
        assertEquals("heartbeat", hb.get("kind").asText());
        assertEquals(4, hb.get("capacity").asInt());
    }

    @Test
    void workerIdIsNodeJavaPid() {
        Identity id = Identity.forNode("worker7");
        assertEquals("worker7-java-" + ProcessHandle.current().pid(), id.workerId());
        assertEquals("java", id.lang());
    }
}
