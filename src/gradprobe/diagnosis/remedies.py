"""What to try when a `gp.probe` verdict fires: the remedies `gradprobe run remedies` (SPEC E1)
and `gradprobe run signal_propagation` (E2) measured to work against that failure.

Pure data, keyed by the verdict names of gradprobe.diagnosis.verdicts (vanishing, exploding,
low_snr, shattered, dead, saturated). Each hint: the remedy, what the measurement showed (quick
scale, fully connected width-64 nets of depth 50 on the digits stand-in, mean over seeds; README
"Remedies, measured"), and the command that shows it. Keep the numbers in step with the README.
"""

from __future__ import annotations

Hint = dict[str, str]

REMEDIES_FOR: dict[str, list[Hint]] = {
    "vanishing": [
        {"remedy": "ReZero / SkipInit (residual branch × a learned scalar initialised at 0)",
         "why": "first/last-layer speed ratio 1.0 at depth 50 (plain He ReLU 0.35); trained to "
                "0.95–0.97 test accuracy (plain He ReLU 0.41)",
         "command": "gradprobe run remedies"},
        {"remedy": "DKS / TAT activation transforms (the `dks` extra) or looks-linear CReLU",
         "why": "speed ratio 0.8–1.35 at depth 50; test accuracy 0.92–0.96",
         "command": "gradprobe run remedies"},
        {"remedy": "an init on the edge of chaos (χ₁ = 1; for tanh with σ_b² = 0, σ_w² ≈ 1.16 "
                   "at depth 100 by the layer-wise theory)",
         "why": "the measured per-layer gradient slope crosses 0 within 2 % of the theory",
         "command": "gradprobe run signal_propagation"},
    ],
    "exploding": [
        {"remedy": "no batch norm in a deep plain net: gate the residual branches instead "
                   "(ReZero, SkipInit, Fixup) or use NF scaled weight standardisation",
         "why": "ReLU + BN at depth 50: first/last speed ratio 10^4 and 0.10 test accuracy; the "
                "gated and NF nets stay within 10^0.35 and train to 0.95–0.97",
         "command": "gradprobe run remedies"},
        {"remedy": "a smaller σ_w² (move from the chaotic phase toward χ₁ = 1)",
         "why": "chaotic tanh nets grow log‖δ‖ by ½ ln χ(q_l) per layer toward the input",
         "command": "gradprobe run signal_propagation"},
    ],
    "shattered": [
        {"remedy": "a net that is linear at init: ReZero, SkipInit, Fixup or looks-linear CReLU",
         "why": "input-gradient lag-1 1.0 at depth 50 (constant along every segment), against "
                "0.39 for plain He ReLU and −0.01 for ReLU + BN",
         "command": "gradprobe run remedies"},
        {"remedy": "DKS-transformed or critical orthogonal tanh; a β-scaled resnet (β = 0.1)",
         "why": "lag-1 0.95 (DKS, orthogonal tanh) and 0.88 (resnet) at depth 50",
         "command": "gradprobe run remedies"},
    ],
    "low_snr": [
        {"remedy": "none of the architecture remedies: more data per step or a decomposed task",
         "why": "45 of the 48 nets trained at depth 50 still fire low_snr, whatever the "
                "remedy; the SNR is a property of the task and the batch (Shalev-Shwartz et al. "
                "2017, §3)",
         "command": "gradprobe run snr; gradprobe run noise_decomposition"},
    ],
    "dead": [
        {"remedy": "looks-linear CReLU, TAT's leaky ReLU or a residual net",
         "why": "plain and orthogonal ReLU nets fire `dead` at depth 50; CReLU always passes "
                "one half, leaky ReLU never has a zero gradient, and the residual variants "
                "do not fire it",
         "command": "gradprobe run remedies"},
    ],
    "saturated": [
        {"remedy": "DKS-transformed tanh (keeps q = 1 at every layer) or orthogonal weights at "
                   "σ_w² = 1 with zero biases",
         "why": "neither fires `saturated`, and both keep lag-1 ≥ 0.95 at depth 50",
         "command": "gradprobe run remedies"},
        {"remedy": "a smaller σ_w² / σ_b² (the length map's fixed point q* sets how far into "
                   "the flat part of tanh the pre-activations sit)",
         "why": "q*, χ₁ and the phase diagram",
         "command": "gradprobe run signal_propagation"},
    ],
}


def what_to_try(verdict: str) -> list[str]:
    """One line per hint for a fired verdict ([] for a name without hints)."""
    return [f"what to try: {h['remedy']} — {h['why']} (see `{h['command']}`)"
            for h in REMEDIES_FOR.get(verdict, [])]
