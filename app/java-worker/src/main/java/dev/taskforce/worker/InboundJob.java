package dev.taskforce.worker;

/**
 * One delivery from a lane queue, not yet parsed: the body is judged on the slot that takes it,
 * so a malformed message is dead-lettered without holding up the consumer.
 *
 * @param epoch the connection incarnation it arrived on; after a reconnect its delivery tag is
 *              void and the broker redelivers it, so a stale one is dropped rather than run.
 */
record InboundJob(String sourceQueue, Lane lane, long deliveryTag, byte[] body, long epoch) {
}
