package dev.taskforce.worker;

/** Who is speaking in events and heartbeats. */
record Identity(String workerId, String node, String lang) {
    static final String LANG = "java";

    static Identity forNode(String node) {
        return new Identity(node + "-java-" + ProcessHandle.current().pid(), node, LANG);
    }
}
