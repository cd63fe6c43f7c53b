#!/usr/bin/env bash
echo "demo: the daemon is being built (issue 4). When it lands, this starts fma-edge with a folder source," >&2
echo "the embedded MQTT broker and the shipped model, feeds it real defect images and prints the results." >&2
exit 1
