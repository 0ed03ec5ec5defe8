"""storybench's ``DirectusClient`` and models over this library (the one-line migration).

``client`` is the client; ``models`` storybench's models and ``shapes`` what turns served sets
into them; ``errors`` storybench's error conventions; ``memo`` and ``registry`` make a fresh
client per call site cost nothing. The public names are exported from ``storybench_prompts``.
"""
