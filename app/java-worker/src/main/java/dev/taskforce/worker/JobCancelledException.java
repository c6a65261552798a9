package dev.taskforce.worker;

/** Thrown by a handler that stops because its job was cancelled; reported as error type {@code Cancelled}. */
public class JobCancelledException extends RuntimeException {
    public JobCancelledException(String message) {
        super(message);
    }
}
