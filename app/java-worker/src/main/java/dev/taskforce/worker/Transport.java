package dev.taskforce.worker;

import com.fasterxml.jackson.databind.JsonNode;

import java.io.IOException;

/**
 * The broker as the job runner sees it. {@link RabbitTransport} is the real one; the tests use
 * a stub that records what was published and acknowledged.
 */
interface Transport {
    /** Publishes to tf.worker-events and waits for the broker's confirm; throws if it nacks or times out. */
    void publishEvent(String routingKey, JsonNode event) throws IOException;

    /** Republishes a body to tf.dlx / tf.dead with the reason and source headers, confirmed. */
    void deadLetter(InboundJob job, String reason) throws IOException;

    void ack(InboundJob job) throws IOException;

    void nack(InboundJob job, boolean requeue) throws IOException;

    /** The current connection incarnation; deliveries from an older one cannot be acked. */
    long epoch();
}
