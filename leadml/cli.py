"""The `leadml` command (placeholder until the CLI lands)."""


def main() -> None:
    print("leadml")
