package dev.taskforce.worker;

import java.nio.file.Path;

/** {@code java -jar taskforce-worker.jar [--config FILE]}: a worker with the demo handlers. */
public final class Main {
    private static final String USAGE = """
            usage: java -jar taskforce-worker.jar [--config FILE]

              --config FILE   the TaskForce config (default: $TASKFORCE_CONFIG, else %s)

            Reads node, [amqp] and [worker]; any key can be overridden as TASKFORCE_<SECTION>__<KEY>.
            Runs the demo handlers: noop, echo, sleep, fail, cpu, hang, jvm_info.
            """.formatted(WorkerConfig.DEFAULT_PATH);

    private Main() {
    }

    public static void main(String[] args) throws InterruptedException {
        String configPath = null;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("-h") || a.equals("--help")) {
                System.err.print(USAGE);
                return;
            } else if (a.equals("--config") && i + 1 < args.length) {
                configPath = args[++i];
            } else if (a.startsWith("--config=")) {
                configPath = a.substring("--config=".length());
            } else {
                System.err.println("taskforce-worker: unexpected argument '" + a + "'");
                System.err.print(USAGE);
                System.exit(2);
            }
        }
        Worker worker;
        try {
            worker = Worker.fromConfig(WorkerConfig.load(WorkerConfig.resolvePath(configPath, System.getenv())));
        } catch (ConfigException e) {
            System.err.println("taskforce-worker: " + e.getMessage());
            System.exit(2);
            return;
        }
        DemoHandlers.register(worker);
        worker.run();
    }
}
