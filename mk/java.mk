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

# -q hides surefire's own counts; print one "N passed, N failed" line from its reports.
_JAVA_TEST_SUMMARY = cat $(JAVA_WORKER_DIR)/target/surefire-reports/TEST-*.xml 2>/dev/null \
	| grep -o '<testsuite [^>]*>' \
	| awk '{ for (i = 1; i <= NF; i++) { split($$i, kv, "="); gsub(/"/, "", kv[2]); n[kv[1]] += kv[2] } } \
	  END { printf "java-worker: %d passed, %d failed, %d skipped\n", n["tests"] - n["failures"] - n["errors"] - n["skipped"], n["failures"] + n["errors"], n["skipped"] }'

.PHONY: java-deps java-build java-test java-smoke java-clean

java-deps: ## fetch every Maven artifact the Java build and tests need (online, once)
	$(MVN) $(MVN_FLAGS) -f $(JAVA_WORKER_DIR)/pom.xml dependency:go-offline
	@# go-offline misses what plugins resolve only when they run (surefire's JUnit provider,
	@# the shade plugin's own dependencies): run the whole lifecycle once, with one quick test.
	$(MVN) $(MVN_FLAGS) -f $(JAVA_WORKER_DIR)/pom.xml package -Dtest=LaneBufferTest -Dsurefire.failIfNoSpecifiedTests=false

java-build: ## Java worker: compile, JUnit tests, shaded jar -> build/taskforce-worker.jar
	$(_MVN) package
	@$(_JAVA_TEST_SUMMARY)
	@mkdir -p $(dir $(JAVA_JAR))
	@# Copy, then rename: a worker running from the old jar keeps its inode instead of reading a half-written file.
	cp $(JAVA_WORKER_DIR)/target/taskforce-worker.jar $(JAVA_JAR).tmp
	mv -f $(JAVA_JAR).tmp $(JAVA_JAR)
	@echo "built $(JAVA_JAR)"

java-test: ## Java worker: the JUnit tests only
	$(_MVN) test
	@$(_JAVA_TEST_SUMMARY)

java-smoke: java-build ## the jar end to end against a private RabbitMQ on 127.0.0.1:5699 (root)
	$(PYTHON) $(JAVA_WORKER_DIR)/smoke/smoke.py --jar $(JAVA_JAR)

java-clean: ## remove the Java build output
	$(_MVN) clean
	rm -f $(JAVA_JAR)
