package dev.taskforce.worker;

import com.fasterxml.jackson.databind.JsonNode;
import com.networknt.schema.Error;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** Every vector in app/schemas/vectors is judged as its folder says, by the same schemas Python uses. */
class SchemaVectorsTest {

    @Test
    void allSixSchemasArePresent() {
        assertEquals(List.of("command", "control", "heartbeat", "job", "job-event", "worker-event"), Schemas.schemaNames());
    }

    @TestFactory
    List<DynamicTest> everyVectorIsJudgedAsFiled() {
        List<DynamicTest> tests = new ArrayList<>();
        for (String schema : Schemas.schemaNames()) {
            for (String verdict : List.of("valid", "invalid")) {
                List<Path> files = Schemas.jsonFiles(Schemas.vectors().resolve(schema).resolve(verdict));
                tests.add(DynamicTest.dynamicTest(schema + "/" + verdict + " has vectors",
                        () -> assertTrue(files.size() >= 3, schema + "/" + verdict + " has " + files.size())));
                for (Path f : files) {
                    String name = schema + "/" + verdict + "/" + f.getFileName();
                    tests.add(DynamicTest.dynamicTest(name, () -> {
                        List<Error> errors = Schemas.validate(schema, Schemas.read(f));
                        if (verdict.equals("valid")) {
                            assertTrue(errors.isEmpty(), name + " should be valid: " + errors);
                        } else {
                            assertFalse(errors.isEmpty(), name + " is filed as invalid but the schema accepts it");
                        }
                    }));
                }
            }
        }
        return tests;
    }

    /** The worker checks job messages by hand (no validator in the jar); it must agree with the schema. */
    @TestFactory
    List<DynamicTest> jobMessageParserAgreesWithTheSchema() {
        List<DynamicTest> tests = new ArrayList<>();
        for (String verdict : List.of("valid", "invalid")) {
            for (Path f : Schemas.jsonFiles(Schemas.vectors().resolve("job").resolve(verdict))) {
                tests.add(DynamicTest.dynamicTest("job/" + verdict + "/" + f.getFileName(), () -> {
                    byte[] body = Files.readAllBytes(f);
                    if (verdict.equals("valid")) {
                        JobMessage m = JobMessage.parse(body);
                        JsonNode raw = Schemas.read(f);
                        assertEquals(raw.get("id").asText(), m.id());
                        assertEquals(raw.get("attempt").asInt(), m.attempt());
                        assertEquals(raw.get("payload"), m.payload());
                    } else {
                        MalformedMessageException e = assertThrows(MalformedMessageException.class,
                                () -> JobMessage.parse(body));
                        assertFalse(e.getMessage().contains("\n"), "the reason must be one line");
                    }
                }));
            }
        }
        return tests;
    }

    @Test
    void nonJsonBodiesAreMalformedWithAOneLineReason() {
        for (String body : List.of("", "not json", "{\"v\":1,", "{} trailing", "[1,2]", "null")) {
            MalformedMessageException e = assertThrows(MalformedMessageException.class,
                    () -> JobMessage.parse(body.getBytes()), body);
            assertFalse(e.getMessage().isBlank());
            assertFalse(e.getMessage().contains("\n"), e.getMessage());
        }
    }

    @Test
    void contractVectorsCoverEveryDemoType() throws IOException {
        Set<String> types = Schemas.jsonFiles(Schemas.vectors().resolve("contract")).stream()
                .map(p -> Schemas.read(p).get("type").asText()).collect(Collectors.toSet());
        assertEquals(Set.of("noop", "echo", "sleep", "fail", "cpu", "hang"), types);
        try (var dirs = Files.list(Schemas.vectors())) {
            dirs.filter(Files::isDirectory).map(d -> d.getFileName().toString())
                    .filter(n -> !n.equals("contract") && !Schemas.schemaNames().contains(n))
                    .forEach(n -> fail("vector folder " + n + " has no schema"));
        }
    }
}
