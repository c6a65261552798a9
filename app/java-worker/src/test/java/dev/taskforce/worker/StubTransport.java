package dev.taskforce.worker;

import com.fasterxml.jackson.databind.JsonNode;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Predicate;

/** Records what the runner publishes and acknowledges, in order; can be told to fail publishes. */
final class StubTransport implements Transport {
    record Published(String routingKey, JsonNode event) {
    }

    record DeadLetter(InboundJob job, String reason) {
    }

    final List<Published> events = new CopyOnWriteArrayList<>();
    final List<DeadLetter> deadLetters = new CopyOnWriteArrayList<>();
    final List<Long> acked = new CopyOnWriteArrayList<>();
    final List<Long> requeued = new CopyOnWriteArrayList<>();
    final List<String> log = new CopyOnWriteArrayList<>();
    volatile Predicate<String> failPublish = rk -> false;
    volatile long epoch;

    @Override
    public void publishEvent(String routingKey, JsonNode event) throws IOException {
        if (failPublish.test(routingKey)) {
            log.add("publish-failed " + routingKey);
            throw new IOException("stub: publish of " + routingKey + " refused");
        }
        events.add(new Published(routingKey, event));
        log.add("publish " + routingKey + " " + event.path("job_id").asText());
    }

    @Override
    public void deadLetter(InboundJob job, String reason) {
        deadLetters.add(new DeadLetter(job, reason));
        log.add("dead-letter " + job.deliveryTag());
    }

    @Override
    public void ack(InboundJob job) {
        acked.add(job.deliveryTag());
        log.add("ack " + job.deliveryTag());
    }

    @Override
    public void nack(InboundJob job, boolean requeue) {
        if (requeue) {
            requeued.add(job.deliveryTag());
        }
        log.add("nack " + job.deliveryTag() + " requeue=" + requeue);
    }

    @Override
    public long epoch() {
        return epoch;
    }

    List<JsonNode> eventsFor(String jobId) {
        List<JsonNode> out = new ArrayList<>();
        for (Published p : events) {
            if (jobId.equals(p.event().path("job_id").asText())) {
                out.add(p.event());
            }
        }
        return out;
    }

    JsonNode terminalFor(String jobId) {
        for (JsonNode e : eventsFor(jobId)) {
            String kind = e.path("kind").asText();
            if (kind.equals("succeeded") || kind.equals("failed")) {
                return e;
            }
        }
        return null;
    }
}
