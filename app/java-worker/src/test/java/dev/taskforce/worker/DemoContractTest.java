package dev.taskforce.worker;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The demo handlers give the results that app/schemas/vectors/contract/ expects, the same ones
 * the Python worker must give. Each vector goes the whole way: job message bytes in, through
 * the runner, to the terminal event as it would be published.
 */
class DemoContractTest {
    private static final Identity ME = new Identity("n1-java-1", "n1", "java");
    private static final JobRunner RUNNER;
    private static final StubTransport STUB = new StubTransport();

    static {
        RUNNER = new JobRunner(ME, DemoHandlers.all(), STUB, new Cancellations(100));
    }

    @AfterAll
    static void stop() {
        RUNNER.shutdownNow();
    }

    @TestFactory
    List<DynamicTest> contractVectors() {
        List<DynamicTest> tests = new ArrayList<>();
        for (Path f : Schemas.jsonFiles(Schemas.vectors().resolve("contract"))) {
            tests.add(DynamicTest.dynamicTest(f.getFileName().toString(), () -> check(Schemas.read(f), f)));
        }
        assertTrue(tests.size() >= 10, "expected the contract vectors under " + Schemas.vectors());
        return tests;
    }

    private static void check(JsonNode vector, Path file) throws Exception {
        String id = "contract-" + file.getFileName().toString().replace(".json", "").replaceAll("[^A-Za-z0-9_-]", "_");
        ObjectNode msg = Jobs.message(id, vector.get("type").asText(), vector.get("payload"));
        msg.put("attempt", vector.get("attempt").asInt());
        msg.put("generation", vector.path("generation").asInt(0));
        msg.put("max_attempts", 10);
        if (vector.has("timeout_s")) {
            msg.set("timeout_s", vector.get("timeout_s"));
        }
        RUNNER.process(Jobs.delivery(msg));

        JsonNode terminal = STUB.terminalFor(id);
        assertNotNull(terminal, "no terminal event for " + file);
        // Compare what goes on the wire, read back, with what the vector says.
        JsonNode onWire = Json.MAPPER.readTree(Json.bytes(terminal));
        assertTrue(Schemas.validate("worker-event", onWire).isEmpty(), onWire.toString());
        JsonNode expect = vector.get("expect");
        assertEquals(expect.get("outcome").asText(), onWire.get("kind").asText(), onWire.toString());
        if (expect.get("outcome").asText().equals("succeeded")) {
            assertEquals(expect.get("result"), onWire.get("result"));
        } else {
            JsonNode type = expect.get("error_type");
            String want = type.isObject() ? type.get("java").asText() : type.asText();
            assertEquals(want, onWire.at("/error/type").asText());
            if (expect.has("error_message")) {
                assertEquals(expect.get("error_message").asText(), onWire.at("/error/message").asText());
            }
        }
    }

    @Test
    void cpuKeepsTheSumExactPastLongRange() {
        assertEquals(0L, DemoHandlers.sumOfSquares(0, null));
        assertEquals(285L, DemoHandlers.sumOfSquares(10, null));
        long n = 4_000_000;
        java.math.BigInteger want = java.math.BigInteger.valueOf(n - 1).multiply(java.math.BigInteger.valueOf(n))
                .multiply(java.math.BigInteger.valueOf(2 * n - 1)).divide(java.math.BigInteger.valueOf(6));
        assertEquals(want, DemoHandlers.sumOfSquares(n, null));
    }

    @Test
    void jvmInfoSaysJava() {
        StubTransport stub = new StubTransport();
        JobRunner r = new JobRunner(ME, DemoHandlers.all(), stub, new Cancellations(10));
        r.process(Jobs.delivery(Jobs.message("jvm1", "jvm_info", Jobs.obj("{}"))));
        JsonNode t = stub.terminalFor("jvm1");
        assertEquals("succeeded", t.get("kind").asText());
        assertEquals("java", t.at("/result/lang").asText());
        assertEquals(System.getProperty("java.version"), t.at("/result/java_version").asText());
        r.shutdownNow();
    }

    @Test
    void everyExecutionPrintsOneExecLine() throws Exception {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream saved = DemoHandlers.out;
        DemoHandlers.out = new PrintStream(buf, true, StandardCharsets.UTF_8);
        StubTransport stub = new StubTransport();
        JobRunner r = new JobRunner(ME, DemoHandlers.all(), stub, new Cancellations(10));
        try {
            ObjectNode m = Jobs.message("exec1", "fail", Jobs.obj("{\"fail_times\":1}"));
            r.process(Jobs.delivery(m));
            m.put("attempt", 2);
            r.process(Jobs.delivery(m));
            r.process(Jobs.delivery(Jobs.message("exec2", "noop", Jobs.obj("{}"))));
        } finally {
            DemoHandlers.out = saved;
            r.shutdownNow();
        }
        String[] lines = buf.toString(StandardCharsets.UTF_8).trim().split("\n");
        assertEquals(3, lines.length, buf.toString(StandardCharsets.UTF_8));
        JsonNode first = Json.MAPPER.readTree(lines[0]);
        assertEquals("exec1", first.get("exec").asText());
        assertEquals(1, first.get("attempt").asInt());
        assertEquals("n1", first.get("node").asText());
        assertEquals("n1-java-1", first.get("worker_id").asText());
        assertEquals(2, Json.MAPPER.readTree(lines[1]).get("attempt").asInt());
        assertEquals("exec2", Json.MAPPER.readTree(lines[2]).get("exec").asText());
    }

    @Test
    void sleepReportsProgressAndStopsOnCancel() throws Exception {
        StubTransport stub = new StubTransport();
        JobRunner r = new JobRunner(ME, DemoHandlers.all(), stub, new Cancellations(10));
        try {
            r.process(Jobs.delivery(Jobs.message("s1", "sleep", Jobs.obj("{\"seconds\": 1.2}"))));
            List<String> kinds = stub.eventsFor("s1").stream().map(e -> e.get("kind").asText()).toList();
            assertEquals(List.of("started", "progress", "succeeded"), kinds);
            assertEquals(1.2, stub.terminalFor("s1").at("/result/slept").asDouble());

            Thread t = new Thread(() -> r.process(Jobs.delivery(Jobs.message("s2", "sleep", Jobs.obj("{\"seconds\": 30}")))));
            t.start();
            long deadline = System.currentTimeMillis() + 5_000;
            while (!r.inFlight().contains("s2") && System.currentTimeMillis() < deadline) {
                Thread.sleep(5);
            }
            r.cancel(List.of("s2"));
            t.join(5_000);
            assertEquals("Cancelled", stub.terminalFor("s2").at("/error/type").asText());
        } finally {
            r.shutdownNow();
        }
    }
}
