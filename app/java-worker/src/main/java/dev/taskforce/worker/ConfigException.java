package dev.taskforce.worker;

/** The configuration cannot be used; the message names the key and what to do about it. */
public class ConfigException extends Exception {
    public ConfigException(String message) {
        super(message);
    }

    public ConfigException(String message, Throwable cause) {
        super(message, cause);
    }
}
