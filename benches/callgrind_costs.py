"""A callgrind file written with a count per instruction (benches/callgrind.sh's
PER_INSTRUCTION), read for the scripts that count the overhead bench."""


def self_costs(path):
    """Each cost line's function, instruction address and self cost (the first event: Ir).

    A `calls=` line is followed by the call's inclusive cost, which is the callee's, not this
    code's: left out, so that each instruction is counted once, where it is.
    """
    function, positions, after_call = "?", 1, False
    with open(path) as lines:
        for line in lines:
            if line.startswith("positions:"):
                positions = len(line.split()) - 1  # "instr line": the cost comes after both
            elif line.startswith("fn="):
                function = line[3:].strip()
            elif line.startswith("calls="):
                after_call = True
            elif line.startswith("0x"):
                fields = line.split()
                if not after_call and len(fields) > positions:
                    yield function, int(fields[0], 16), int(fields[positions])
                after_call = False
