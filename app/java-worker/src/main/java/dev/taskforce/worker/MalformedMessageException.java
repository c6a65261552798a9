package dev.taskforce.worker;

/** A job message that is not JSON or breaks job.schema.json; the message is the one-line reason. */
final class MalformedMessageException extends Exception {
    MalformedMessageException(String reason) {
        super(reason);
    }
}
