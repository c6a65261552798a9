package dev.taskforce.worker;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class WorkerConfigTest {
    private static final String FULL = """
            node = "core1"                       # this machine's short name

            [amqp]
            hosts = ["10.77.0.11:5672", "10.77.0.12:5672", "10.77.0.13:5672"]
            vhost = "taskforce"
            user = "worker"
            password = "s3cret"
            heartbeat_s = 10

            [raft]
            self = "10.77.0.11:4321"
            peers = ["10.77.0.12:4321"]
            password = "not-for-workers"

            [worker]
            queues = ["default"]
            slots = 4
            prefetch = 2
            handlers = ["taskforce.worker.demo"]
            grace_s = 30
            """;

    @TempDir
    Path dir;

    private Path write(String toml) throws IOException {
        Path p = dir.resolve("taskforce.toml");
        Files.writeString(p, toml);
        return p;
    }

    @Test
    void readsTheDocumentedExample() throws Exception {
        WorkerConfig c = WorkerConfig.load(write(FULL), Map.of());
        assertEquals("core1", c.node());
        assertEquals(List.of("10.77.0.11:5672", "10.77.0.12:5672", "10.77.0.13:5672"), c.amqp().hosts());
        assertEquals("taskforce", c.amqp().vhost());
        assertEquals("worker", c.amqp().user());
        assertEquals("s3cret", c.amqp().password());
        assertEquals(10, c.amqp().heartbeatS());
        assertEquals(List.of("default"), c.worker().queues());
        assertEquals(4, c.worker().slots());
        assertEquals(2, c.worker().prefetch());
        assertEquals(30.0, c.worker().graceS());
        assertEquals(2.0, c.worker().heartbeatS());
        assertFalse(c.amqp().toString().contains("s3cret"), "the password must not reach the logs");
    }

    @Test
    void environmentOverridesEveryKindOfKey() throws Exception {
        Map<String, String> env = Map.of(
                "TASKFORCE_AMQP__PASSWORD", "from-env",
                "TASKFORCE_WORKER__SLOTS", "8",
                "TASKFORCE_WORKER__GRACE_S", "2.5",
                "TASKFORCE_WORKER__QUEUES", "default, batch ,",
                "TASKFORCE_AMQP__HOSTS", "127.0.0.1:5699",
                "TASKFORCE_NODE", "worker9",
                "TASKFORCE_CONFIG", "/ignored/here",
                "TASKFORCE_RAFT__PASSWORD", "ignored-by-the-worker",
                "PATH", "/usr/bin");
        WorkerConfig c = WorkerConfig.load(write(FULL), env);
        assertEquals("from-env", c.amqp().password());
        assertEquals(8, c.worker().slots());
        assertEquals(2.5, c.worker().graceS());
        assertEquals(List.of("default", "batch"), c.worker().queues());
        assertEquals(List.of("127.0.0.1:5699"), c.amqp().hosts());
        assertEquals("worker9", c.node());
        assertEquals(2, c.worker().prefetch(), "keys not overridden keep the file's value");
    }

    @Test
    void environmentCanSupplyAWholeSection() throws Exception {
        Path p = write("""
                [amqp]
                user = "worker"
                password = "x"
                """);
        WorkerConfig c = WorkerConfig.load(p, Map.of("TASKFORCE_WORKER__PREFETCH", "5"));
        assertEquals(5, c.worker().prefetch());
        assertEquals(4, c.worker().slots());
        assertEquals(List.of("default"), c.worker().queues());
        assertEquals(List.of("127.0.0.1:5672"), c.amqp().hosts());
        assertTrue(c.node().length() > 0);
    }

    @Test
    void badValuesAreAllReportedByKey() throws Exception {
        Path p = write("""
                [amqp]
                user = "worker"
                password = ""
                heartbeat_s = 0
                hosts = ["a:notaport"]
                [worker]
                slots = 0
                prefetch = "lots"
                queues = ["bad queue"]
                """);
        ConfigException e = assertThrows(ConfigException.class, () -> WorkerConfig.load(p, Map.of()));
        for (String key : List.of("amqp.password", "amqp.heartbeat_s", "amqp.hosts", "worker.slots",
                "worker.prefetch", "worker.queues")) {
            assertTrue(e.getMessage().contains(key), key + " missing from: " + e.getMessage());
        }
    }

    @Test
    void badEnvironmentValueIsNamed() throws Exception {
        ConfigException e = assertThrows(ConfigException.class,
                () -> WorkerConfig.load(write(FULL), Map.of("TASKFORCE_WORKER__SLOTS", "eight")));
        assertTrue(e.getMessage().contains("worker.slots"), e.getMessage());
    }

    @Test
    void missingSectionsAndFilesSayWhatToDo() throws Exception {
        ConfigException noWorker = assertThrows(ConfigException.class, () -> WorkerConfig.load(write("""
                [amqp]
                user = "w"
                password = "p"
                """), Map.of()));
        assertTrue(noWorker.getMessage().contains("[worker]"), noWorker.getMessage());
        ConfigException noUser = assertThrows(ConfigException.class, () -> WorkerConfig.load(write("""
                [amqp]
                password = "p"
                [worker]
                """), Map.of()));
        assertTrue(noUser.getMessage().contains("amqp.user"), noUser.getMessage());
        ConfigException missing = assertThrows(ConfigException.class,
                () -> WorkerConfig.load(dir.resolve("nope.toml"), Map.of()));
        assertTrue(missing.getMessage().contains("--config"), missing.getMessage());
        ConfigException notToml = assertThrows(ConfigException.class,
                () -> WorkerConfig.load(write("this is = = not toml"), Map.of()));
        assertTrue(notToml.getMessage().contains("not valid TOML"), notToml.getMessage());
    }

    @Test
    void configPathComesFromTheFlagThenTheEnvironmentThenTheDefault() {
        assertEquals(Path.of("/a.toml"), WorkerConfig.resolvePath("/a.toml", Map.of("TASKFORCE_CONFIG", "/b.toml")));
        assertEquals(Path.of("/b.toml"), WorkerConfig.resolvePath(null, Map.of("TASKFORCE_CONFIG", "/b.toml")));
        assertEquals(Path.of("/etc/taskforce/taskforce.toml"), WorkerConfig.resolvePath(null, Map.of()));
    }

    @Test
    void hostsParseLikeThePythonSide() {
        assertEquals(new HostPort("10.0.0.1", 5672), HostPort.parse("10.0.0.1:5672", 5672));
        assertEquals(new HostPort("rabbit1", 5672), HostPort.parse("rabbit1", 5672));
        assertEquals(new HostPort("::1", 5699), HostPort.parse("[::1]:5699", 5672));
        assertThrows(IllegalArgumentException.class, () -> HostPort.parse("h:0", 5672));
        assertThrows(IllegalArgumentException.class, () -> HostPort.parse(":5672", 5672));
    }
}
