#!/bin/bash
# The job ec2-runner runs at boot. For now it only takes a known amount of
# time, so a launch can be measured end to end; replace the body with real work.
set -euo pipefail

echo "xyz: started at $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
sleep 60
echo "xyz: finished at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
