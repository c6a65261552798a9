package dev.taskforce.worker;

import com.fasterxml.jackson.databind.JsonNode;

/**
 * Runs one job type. Register one per type with {@link Worker#handler(String, Handler)}.
 *
 * <p>The return value becomes the {@code result} of the {@code succeeded} event: a Jackson
 * {@link JsonNode}, or anything Jackson can turn into JSON (maps, lists, records, numbers,
 * strings, {@code null}). A thrown exception becomes a {@code failed} event whose error type is
 * the exception's simple class name. Throw {@link JobCancelledException} (or call
 * {@link JobContext#checkCancelled()}) to stop a cancelled job; it is reported as
 * {@code Cancelled}.
 *
 * <p>The handler runs on its own thread under the job's {@code timeout_s}. At the deadline the
 * thread is interrupted and the job reported as {@code Timeout}; a handler that ignores the
 * interrupt is abandoned, and its slot goes on serving other jobs.
 */
@FunctionalInterface
public interface Handler {
    Object handle(JsonNode payload, JobContext ctx) throws Exception;
}
