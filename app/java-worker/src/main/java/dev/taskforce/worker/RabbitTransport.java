package dev.taskforce.worker;

import com.fasterxml.jackson.databind.JsonNode;
import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Address;
import com.rabbitmq.client.BuiltinExchangeType;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import com.rabbitmq.client.DefaultConsumer;
import com.rabbitmq.client.Envelope;
import com.rabbitmq.client.Recoverable;
import com.rabbitmq.client.RecoveryListener;
import com.rabbitmq.client.ShutdownSignalException;
import com.rabbitmq.client.impl.recovery.RecordedBinding;
import com.rabbitmq.client.impl.recovery.RecordedConsumer;
import com.rabbitmq.client.impl.recovery.RecordedExchange;
import com.rabbitmq.client.impl.recovery.RecordedQueue;
import com.rabbitmq.client.impl.recovery.TopologyRecoveryFilter;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;

/**
 * The worker's RabbitMQ side: one connection with automatic recovery across every broker in
 * {@code [amqp].hosts}; one consuming channel (a consumer per lane queue, each with a window of
 * {@code slots + prefetch}, plus the worker's exclusive control queue); a small pool of
 * confirm-mode channels for events; and a channel for heartbeats.
 *
 * <p>Topology belongs to the Python side. This class declares the exchanges and the lane
 * queues with exactly the Python arguments so that a worker started first still works; a
 * declaration the broker refuses (no configure permission, or different arguments) is logged
 * and skipped, and the lane queues are then only checked passively. Only the control queue
 * and the consumers are re-declared by the client's automatic recovery.
 */
final class RabbitTransport implements Transport, AutoCloseable {
    static final String JOBS_X = "tf.jobs";
    static final String EVENTS_X = "tf.worker-events";
    static final String CONTROL_X = "tf.control";
    static final String DLX = "tf.dlx";
    static final String DEAD_Q = "tf.dead";
    static final int DELIVERY_LIMIT = 5;
    static final String REASON_HEADER = "x-taskforce-reason";
    static final String SOURCE_HEADER = "x-taskforce-source";

    private static final Logger log = LoggerFactory.getLogger(RabbitTransport.class);
    private static final long CONFIRM_TIMEOUT_MS = 15_000;
    private static final long RETRY_MS = 5_000;
    private static final AMQP.BasicProperties PERSISTENT_JSON = new AMQP.BasicProperties.Builder()
            .contentType("application/json").deliveryMode(2).build();

    private final WorkerConfig config;
    private final Identity me;
    private final LaneBuffer buffer;
    private final Consumer<JsonNode> onControl;
    private final AtomicLong epoch = new AtomicLong();
    private final Object consumeLock = new Object();
    private final Map<String, String> laneConsumerTags = new ConcurrentHashMap<>();
    private final ScheduledExecutorService retries =
            Executors.newSingleThreadScheduledExecutor(JobRunner.daemonThreads("tf-amqp-retry-"));

    private volatile Connection connection;
    private volatile Channel consumeChannel;
    private volatile boolean consuming;
    private Channel heartbeatChannel;
    private BlockingQueue<Channel> publishers;

    RabbitTransport(WorkerConfig config, Identity me, LaneBuffer buffer, Consumer<JsonNode> onControl) {
        this.config = config;
        this.me = me;
        this.buffer = buffer;
        this.onControl = onControl;
    }

    /** The arguments of a lane queue; they must equal taskforce.amqp.topology.lane_queue_args(). */
    static Map<String, Object> laneQueueArgs() {
        Map<String, Object> args = new HashMap<>();
        args.put("x-queue-type", "quorum");
        args.put("x-delivery-limit", DELIVERY_LIMIT);
        args.put("x-dead-letter-exchange", DLX);
        args.put("x-dead-letter-routing-key", DEAD_Q);
        return args;
    }

    List<String> laneQueues() {
        List<String> out = new ArrayList<>();
        for (String q : config.worker().queues()) {
            for (Lane lane : Lane.values()) {
                out.add(lane.queueName(q));
            }
        }
        return out;
    }

    /** Connects to the first broker that answers, retrying with backoff; false if told to stop first. */
    boolean connect(BooleanSupplier stopping) throws InterruptedException {
        ConnectionFactory f = new ConnectionFactory();
        WorkerConfig.Amqp amqp = config.amqp();
        f.setVirtualHost(amqp.vhost());
        f.setUsername(amqp.user());
        f.setPassword(amqp.password());
        f.setRequestedHeartbeat(amqp.heartbeatS());
        f.setConnectionTimeout(5_000);
        f.setHandshakeTimeout(10_000);
        f.setChannelRpcTimeout(30_000);
        f.setAutomaticRecoveryEnabled(true);
        f.setTopologyRecoveryEnabled(true);
        f.setNetworkRecoveryInterval(2_000);
        f.setTopologyRecoveryFilter(new TopologyRecoveryFilter() {
            @Override
            public boolean filterExchange(RecordedExchange exchange) {
                return false;
            }

            @Override
            public boolean filterQueue(RecordedQueue queue) {
                return queue.isServerNamed();
            }

            @Override
            public boolean filterBinding(RecordedBinding binding) {
                return CONTROL_X.equals(binding.getSource());
            }

            @Override
            public boolean filterConsumer(RecordedConsumer consumer) {
                return true;
            }
        });
        List<Address> addresses = new ArrayList<>();
        for (String h : amqp.hosts()) {
            HostPort hp = HostPort.parse(h, 5672);
            addresses.add(new Address(hp.host(), hp.port()));
        }
        long delay = 200;
        while (!stopping.getAsBoolean()) {
            List<Address> order = new ArrayList<>(addresses);
            Collections.shuffle(order);
            try {
                Connection c = f.newConnection(order, "taskforce-worker " + me.workerId());
                onConnected(c);
                log.info("connected to {}:{} vhost {} as {}", c.getAddress().getHostAddress(), c.getPort(),
                        amqp.vhost(), amqp.user());
                return true;
            } catch (IOException | TimeoutException e) {
                log.warn("no RabbitMQ node of {} accepted the connection ({}); retrying in {} ms", amqp.hosts(),
                        rootMessage(e), delay);
                Thread.sleep(delay);
                delay = Math.min(delay * 2, RETRY_MS);
            }
        }
        return false;
    }

    private void onConnected(Connection c) throws IOException {
        this.connection = c;
        c.addShutdownListener(cause -> {
            if (!cause.isInitiatedByApplication()) {
                long e = epoch.incrementAndGet();
                int dropped = buffer.discardOlderThan(e);
                log.warn("connection lost ({}); dropped {} buffered job(s), the broker redelivers them;"
                        + " reconnecting", cause.getMessage(), dropped);
            }
        });
        ((Recoverable) c).addRecoveryListener(new RecoveryListener() {
            @Override
            public void handleRecovery(Recoverable recoverable) {
                log.info("connection recovered to {}:{}; consumers resubscribed",
                        connection.getAddress().getHostAddress(), connection.getPort());
            }

            @Override
            public void handleRecoveryStarted(Recoverable recoverable) {
                log.info("recovering the connection");
            }
        });
        heartbeatChannel = c.createChannel();
        int size = config.worker().slots() + 2;
        publishers = new ArrayBlockingQueue<>(size);
        for (int i = 0; i < size; i++) {
            publishers.add(confirmChannel());
        }
    }

    private Channel confirmChannel() throws IOException {
        Channel ch = connection.createChannel();
        ch.confirmSelect();
        return ch;
    }

    /**
     * Declares the exchanges, tf.dead and the lane queues with the Python side's arguments.
     * Each declaration runs on its own short-lived channel, so a refusal closes only that one.
     */
    void declareTopology() {
        declare("exchange " + JOBS_X, ch -> ch.exchangeDeclare(JOBS_X, BuiltinExchangeType.DIRECT, true));
        declare("exchange " + EVENTS_X, ch -> ch.exchangeDeclare(EVENTS_X, BuiltinExchangeType.TOPIC, true));
        declare("exchange " + CONTROL_X, ch -> ch.exchangeDeclare(CONTROL_X, BuiltinExchangeType.FANOUT, true));
        declare("exchange " + DLX, ch -> ch.exchangeDeclare(DLX, BuiltinExchangeType.DIRECT, true));
        declare("queue " + DEAD_Q, ch -> {
            ch.queueDeclare(DEAD_Q, true, false, false, Map.of("x-queue-type", "quorum"));
            ch.queueBind(DEAD_Q, DLX, DEAD_Q);
        });
        for (String q : laneQueues()) {
            declare("queue " + q, ch -> {
                ch.queueDeclare(q, true, false, false, laneQueueArgs());
                ch.queueBind(q, JOBS_X, q);
            });
        }
    }

    /** Waits until every lane queue exists (the orchestrator may not have declared them yet). */
    boolean awaitLaneQueues(BooleanSupplier stopping) throws InterruptedException {
        for (String q : laneQueues()) {
            while (!exists(q)) {
                if (stopping.getAsBoolean()) {
                    return false;
                }
                log.error("lane queue {} does not exist and this worker could not declare it; waiting for"
                        + " the orchestrator to declare it (retry in {} ms)", q, RETRY_MS);
                Thread.sleep(RETRY_MS);
            }
        }
        return true;
    }

    private boolean exists(String queue) {
        try (Channel ch = connection.createChannel()) {
            ch.queueDeclarePassive(queue);
            return true;
        } catch (IOException | TimeoutException | ShutdownSignalException e) {
            return false;
        }
    }

    private interface Declaration {
        void apply(Channel ch) throws IOException;
    }

    private void declare(String what, Declaration d) {
        Channel ch = null;
        try {
            ch = connection.createChannel();
            d.apply(ch);
        } catch (IOException | ShutdownSignalException e) {
            log.warn("could not declare {} ({}); relying on the orchestrator's topology", what, rootMessage(e));
        } finally {
            closeQuietly(ch);
        }
    }

    /** Subscribes to every lane queue and to the control exchange. */
    void startConsuming() throws IOException {
        synchronized (consumeLock) {
            consuming = true;
            openConsumeChannel();
        }
    }

    private void openConsumeChannel() throws IOException {
        Channel ch = connection.createChannel();
        ch.basicQos(config.worker().laneWindow(), false);   // global=false: per consumer, so per lane
        consumeChannel = ch;
        laneConsumerTags.clear();
        for (String q : config.worker().queues()) {
            for (Lane lane : Lane.values()) {
                subscribe(q, lane);
            }
        }
        String controlQueue = ch.queueDeclare("", false, true, true, null).getQueue();
        ch.queueBind(controlQueue, CONTROL_X, "");
        ch.basicConsume(controlQueue, true, new ControlConsumer(ch));
        ch.addShutdownListener(cause -> {
            if (!cause.isInitiatedByApplication() && !cause.isHardError() && consuming) {
                // A channel-level error (say, an ack the broker did not expect) closes only this channel,
                // and automatic recovery does not reopen it; its delivery tags die with it.
                long e = epoch.incrementAndGet();
                int dropped = buffer.discardOlderThan(e);
                log.error("consuming channel closed by the broker ({}); dropped {} buffered job(s); reopening",
                        cause.getMessage(), dropped);
                retries.schedule(this::reopenConsumeChannel, 1, TimeUnit.SECONDS);
            }
        });
    }

    private void reopenConsumeChannel() {
        synchronized (consumeLock) {
            if (!consuming) {
                return;
            }
            try {
                openConsumeChannel();
                log.info("consuming channel reopened");
            } catch (IOException | RuntimeException e) {
                log.warn("could not reopen the consuming channel ({}); retrying", rootMessage(e));
                retries.schedule(this::reopenConsumeChannel, RETRY_MS, TimeUnit.MILLISECONDS);
            }
        }
    }

    private void subscribe(String queue, Lane lane) throws IOException {
        String name = lane.queueName(queue);
        String tag = consumeChannel.basicConsume(name, false, new LaneConsumer(consumeChannel, queue, lane));
        laneConsumerTags.put(name, tag);
    }

    private void resubscribe(String queue, Lane lane) {
        synchronized (consumeLock) {
            if (!consuming) {
                return;
            }
            try {
                subscribe(queue, lane);
                log.info("resubscribed to {}", lane.queueName(queue));
            } catch (IOException | RuntimeException e) {
                log.warn("cannot resubscribe to {} yet ({}); retrying in {} ms", lane.queueName(queue),
                        rootMessage(e), RETRY_MS);
                retries.schedule(() -> resubscribe(queue, lane), RETRY_MS, TimeUnit.MILLISECONDS);
            }
        }
    }

    /** Cancels the lane consumers; the control consumer stays so cancels still reach running jobs. */
    void stopConsuming() {
        synchronized (consumeLock) {
            consuming = false;
            Channel ch = consumeChannel;
            for (Map.Entry<String, String> e : laneConsumerTags.entrySet()) {
                try {
                    if (ch != null && ch.isOpen()) {
                        ch.basicCancel(e.getValue());
                    }
                } catch (IOException | RuntimeException ex) {
                    log.debug("cancelling the consumer on {}: {}", e.getKey(), ex.toString());
                }
            }
            laneConsumerTags.clear();
        }
    }

    @Override
    public long epoch() {
        return epoch.get();
    }

    @Override
    public void publishEvent(String routingKey, JsonNode event) throws IOException {
        publishConfirmed(EVENTS_X, routingKey, PERSISTENT_JSON, Json.bytes(event));
    }

    @Override
    public void deadLetter(InboundJob job, String reason) throws IOException {
        Map<String, Object> headers = new HashMap<>();
        headers.put(REASON_HEADER, reason);
        headers.put(SOURCE_HEADER, job.sourceQueue());
        headers.put("x-taskforce-worker", me.workerId());
        AMQP.BasicProperties props = new AMQP.BasicProperties.Builder()
                .deliveryMode(2).headers(headers).build();
        publishConfirmed(DLX, DEAD_Q, props, job.body());
    }

    void publishHeartbeat(JsonNode heartbeat) {
        Channel ch = heartbeatChannel;
        if (ch == null) {
            return;
        }
        try {
            synchronized (ch) {
                ch.basicPublish(EVENTS_X, "heartbeat", PERSISTENT_JSON, Json.bytes(heartbeat));
            }
        } catch (IOException | RuntimeException e) {
            log.debug("heartbeat not sent: {}", e.toString());
        }
    }

    private void publishConfirmed(String exchange, String routingKey, AMQP.BasicProperties props, byte[] body)
            throws IOException {
        Channel ch = borrow();
        try {
            ch.basicPublish(exchange, routingKey, props, body);
            if (!ch.waitForConfirms(CONFIRM_TIMEOUT_MS)) {
                throw new IOException("the broker nacked a publish to " + exchange + "/" + routingKey);
            }
        } catch (TimeoutException e) {
            throw new IOException("no publisher confirm within " + CONFIRM_TIMEOUT_MS + " ms", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while waiting for a publisher confirm", e);
        } catch (ShutdownSignalException e) {
            throw new IOException("channel closed: " + e.getMessage(), e);
        } finally {
            giveBack(ch);
        }
    }

    private Channel borrow() throws IOException {
        BlockingQueue<Channel> pool = publishers;
        if (pool == null) {
            throw new IOException("not connected");
        }
        try {
            Channel ch = pool.poll(CONFIRM_TIMEOUT_MS, TimeUnit.MILLISECONDS);
            if (ch == null) {
                throw new IOException("no publishing channel free within " + CONFIRM_TIMEOUT_MS + " ms");
            }
            return ch;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while waiting for a publishing channel", e);
        }
    }

    /** Returns a channel to the pool, replacing it if the broker closed it while the connection lives on. */
    private void giveBack(Channel ch) {
        Channel keep = ch;
        Connection c = connection;
        if (!ch.isOpen() && c != null && c.isOpen()) {
            try {
                keep = confirmChannel();
            } catch (IOException | RuntimeException e) {
                log.debug("could not replace a closed publishing channel: {}", e.toString());
            }
        }
        publishers.offer(keep);
    }

    @Override
    public void ack(InboundJob job) throws IOException {
        synchronized (consumeLock) {
            // Checked under the lock that also guards reopening the channel, so a tag from an earlier
            // channel never reaches a new one (the broker would close it for an unknown tag).
            if (job.epoch() < epoch.get()) {
                log.debug("not acking delivery {}: it came on an earlier connection and will be redelivered",
                        job.deliveryTag());
                return;
            }
            consumeChannel.basicAck(job.deliveryTag(), false);
        }
    }

    @Override
    public void nack(InboundJob job, boolean requeue) throws IOException {
        synchronized (consumeLock) {
            if (job.epoch() < epoch.get()) {
                return;
            }
            consumeChannel.basicNack(job.deliveryTag(), false, requeue);
        }
    }

    @Override
    public void close() {
        consuming = false;
        retries.shutdownNow();
        Connection c = connection;
        if (c != null) {
            try {
                c.close(5_000);
            } catch (IOException | RuntimeException e) {
                log.debug("closing the connection: {}", e.toString());
            }
        }
    }

    private static void closeQuietly(Channel ch) {
        if (ch != null && ch.isOpen()) {
            try {
                ch.close();
            } catch (IOException | TimeoutException | RuntimeException e) {
                log.trace("closing a channel: {}", e.toString());
            }
        }
    }

    private static String rootMessage(Throwable t) {
        Throwable r = t;
        while (r.getCause() != null && r.getCause() != r) {
            r = r.getCause();
        }
        String m = r.getMessage();
        return r.getClass().getSimpleName() + (m == null ? "" : ": " + JobMessage.oneLine(m));
    }

    /** One lane queue's consumer: deliveries go into the buffer, unparsed. */
    private final class LaneConsumer extends DefaultConsumer {
        private final String queue;
        private final Lane lane;

        LaneConsumer(Channel ch, String queue, Lane lane) {
            super(ch);
            this.queue = queue;
            this.lane = lane;
        }

        @Override
        public void handleDelivery(String consumerTag, Envelope envelope, AMQP.BasicProperties properties,
                                   byte[] body) {
            InboundJob job = new InboundJob(lane.queueName(queue), lane, envelope.getDeliveryTag(), body, epoch.get());
            if (!buffer.offer(job)) {
                try {
                    nack(job, true);
                } catch (IOException | RuntimeException e) {
                    log.debug("requeue of a delivery that arrived while stopping failed: {}", e.toString());
                }
            }
        }

        @Override
        public void handleCancel(String consumerTag) {
            log.warn("the broker cancelled the consumer on {} (queue deleted?); resubscribing",
                    lane.queueName(queue));
            laneConsumerTags.remove(lane.queueName(queue));
            retries.schedule(() -> resubscribe(queue, lane), RETRY_MS, TimeUnit.MILLISECONDS);
        }
    }

    /** The control queue's consumer: cancel messages from the orchestrator. */
    private final class ControlConsumer extends DefaultConsumer {
        ControlConsumer(Channel ch) {
            super(ch);
        }

        @Override
        public void handleDelivery(String consumerTag, Envelope envelope, AMQP.BasicProperties properties,
                                   byte[] body) {
            try {
                onControl.accept(Json.MAPPER.readTree(body));
            } catch (IOException | RuntimeException e) {
                log.warn("ignoring an unreadable control message: {}", JobMessage.oneLine(e.getMessage()));
            }
        }
    }
}
