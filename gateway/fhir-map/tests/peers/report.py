"""The validators' common loop: run `check` on every file and report the
way the Rust tests read it, one line per file ("ok   NAME" or
"FAIL NAME: why") and a closing "N passed, M failed". Returns the exit
status: 1 on any failure, or when there was nothing to check."""


def report(check, files, name=str):
    passed = failed = 0
    for f in files:
        try:
            check(f)
            passed += 1
            print(f"ok   {name(f)}")
        except Exception as e:  # noqa: BLE001 - report every kind of failure
            failed += 1
            text = str(e).replace("\n", "\n     ")
            print(f"FAIL {name(f)}: {text}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not files else 0
