"""`python -m fnn ...`: the fnn command (fnn.commands)."""
from fnn.commands import console

if __name__ == "__main__":
    console()
