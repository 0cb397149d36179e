import sys

from ladder.cli.main import main

# The guard matters: vllm starts its engine core with multiprocessing "spawn", which imports the main
# module again in the child (as __mp_main__); without it, `python -m ladder assess` would run twice.
if __name__ == "__main__":
    sys.exit(main())
