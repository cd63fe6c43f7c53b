#!/usr/bin/env python3
"""Runs one Eclipse Paho interoperability suite (client_test.py or client_test5.py from paho.mqtt.testing) against a
broker and prints one JSON line: {"suite", "ran", "failed": [names], "errors": [names]}.

The suites read their settings from globals set in their own __main__ block and hand sys.argv to unittest; this driver
sets the same globals (host, port and the topic sets the suites' __main__ uses) and runs unittest itself.
Usage: paho_suite.py PAHO_INTEROPERABILITY_DIR client_test|client_test5 HOST PORT
"""
import importlib
import json
import logging
import signal
import sys
import unittest

PER_TEST_SECONDS = 60  # a test waiting for a message the broker never sends is an error, not a hung run

directory, name, host, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path.insert(0, directory)
suite = importlib.import_module(name)
prefix = "client_test5/" if name == "client_test5" else ""
suite.host, suite.port, suite.topic_prefix = host, port, prefix
suite.topics = [prefix + t for t in ("TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA")]
suite.wildtopics = [prefix + t for t in ("TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#")]
suite.nosubscribe_topics = ("test/nosubscribe",)
logging.getLogger().setLevel(logging.ERROR)



class TestTimedOut(Exception):
    pass


def on_alarm(signum, frame):
    raise TestTimedOut(f"no answer within {PER_TEST_SECONDS} s")


class BoundedResult(unittest.TextTestResult):
    def startTest(self, test):
        signal.alarm(PER_TEST_SECONDS)
        super().startTest(test)

    def stopTest(self, test):
        signal.alarm(0)
        super().stopTest(test)


signal.signal(signal.SIGALRM, on_alarm)
runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=2, resultclass=BoundedResult)
result = runner.run(unittest.defaultTestLoader.loadTestsFromModule(suite))
short = lambda t: t.id().rsplit(".", 1)[-1]
print(json.dumps({
    "suite": name,
    "ran": result.testsRun,
    "failed": sorted(short(t) for t, _ in result.failures),
    "errors": sorted(short(t) for t, _ in result.errors),
}))
