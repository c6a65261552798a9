# The Java worker: build, test and package app/java-worker into build/taskforce-worker.jar.
#
#   make java-deps    fetch every Maven artifact the build and tests need, once, online
#   make java-build   compile, run the JUnit tests, shade the jar, copy it to build/
#   make java-test    the JUnit tests only
#   make java-smoke   run the jar against a private RabbitMQ on 127.0.0.1:5699 (root, rabbitmq-server)
#
# After java-deps, JAVA_OFFLINE=1 makes every later build run Maven with -o, so the lab
# and CI build without the network.

JAVA_WORKER_DIR ?= app/java-worker
JAVA_JAR        ?= build/taskforce-worker.jar
MVN             ?= mvn
MVN_FLAGS       ?= -B -q
JAVA_OFFLINE    ?=
PYTHON          ?= .venv/bin/python

_MVN = $(MVN) $(MVN_FLAGS) $(if $(filter 1 yes true,$(JAVA_OFFLINE)),-o) -f $(JAVA_WORKER_DIR)/pom.xml

.PHONY: java-deps java-build java-test java-smoke java-clean

java-deps:
	$(MVN) $(MVN_FLAGS) -f $(JAVA_WORKER_DIR)/pom.xml dependency:go-offline
	@# go-offline misses what plugins resolve only when they run (surefire's JUnit provider,
	@# the shade plugin's own dependencies): run the whole lifecycle once, with one quick test.
	$(MVN) $(MVN_FLAGS) -f $(JAVA_WORKER_DIR)/pom.xml package -Dtest=LaneBufferTest -Dsurefire.failIfNoSpecifiedTests=false

java-build:
	$(_MVN) package
	@mkdir -p $(dir $(JAVA_JAR))
	cp $(JAVA_WORKER_DIR)/target/taskforce-worker.jar $(JAVA_JAR)
	@echo "built $(JAVA_JAR)"

java-test:
	$(_MVN) test

java-smoke: java-build
	$(PYTHON) $(JAVA_WORKER_DIR)/smoke/smoke.py --jar $(JAVA_JAR)

java-clean:
	$(_MVN) clean
	rm -f $(JAVA_JAR)
