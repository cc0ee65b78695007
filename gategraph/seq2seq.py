"""Sequence to sequence: an encoder reads the source, a decoder writes the target one token at a time,
optionally attending to the encoder's outputs (Luong et al. 2015: c_t = attention(M, h_t), the output layer
reads [h_t, c_t]). A bidirectional encoder reads the source both ways; the memory's row j is then
h→_j + h←_j, so that it holds x_j as the latest input of both directions (the forward state alone sums up
x_1 .. x_j), and the decoder starts from the forward encoder's final state.

Training feeds the decoder, at each step, the true previous token with probability `teacher_forcing`, else
its own previous guess (scheduled sampling when the ratio changes over training); inference decodes
greedily. A step that reads its own guess must wait for the step before; the steps the teacher forces do not,
so the decoder runs each stretch of forced steps as one kernel call (at ratio 1, the whole target in one
call), and BPTT goes back through the same stretches (each kernel's backward pass, the state gradient
carried from one to the next). Tokens go in as one-hot vectors. With no source (`source_vocab=None`) it is
a language model.

Imports: numpy, gategraph.kernel, gategraph.models, gategraph.cells, gategraph.errors.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gategraph.cells import attention
from gategraph.errors import SpecError
from gategraph.kernel import compile
from gategraph.models import Linear, softmax_xent
from gategraph.spec import Cell

SCORES = ("dot", "general", "additive")


class Segment(NamedTuple):
    """Decoding steps run as one kernel call, and what BPTT needs of them: the steps (a slice of the target),
    the one-hot inputs, the state they start from, the decoder's outputs h, the output layer's input
    (h, or [h, c] with attention), the tapes of the decoder and of attention."""

    steps: slice
    x: np.ndarray
    state: dict
    h: np.ndarray
    feat: np.ndarray
    tape: object
    att_tape: object


class Seq2Seq:
    """Encoder and decoder of one cell, hidden size H; target tokens 0 .. V-1 with `start` and `end` among them."""

    def __init__(self, cell: Cell, source_vocab: int | None, target_vocab: int, hidden: int, start: int, end: int,
                 attention_score: str | None = None, dtype: str = "float32", bidirectional: bool = False):
        if attention_score is not None and attention_score not in SCORES:
            raise SpecError(f"attention must be one of {', '.join(SCORES)}, got {attention_score!r}")
        if attention_score and source_vocab is None:
            raise SpecError("attention needs a source to attend to")
        if bidirectional and source_vocab is None:
            raise SpecError("a bidirectional encoder needs a source to read")
        self.V, self.H, self.start, self.end = target_vocab, hidden, start, end
        self.dtype = np.dtype(dtype)
        self.encoder = compile(cell, source_vocab, hidden, dtype) if source_vocab else None
        self.backward_encoder = compile(cell, source_vocab, hidden, dtype) if bidirectional else None
        self.decoder = compile(cell, target_vocab, hidden, dtype)
        self.attn = None
        if attention_score:
            extra = {"A": hidden} if attention_score == "additive" else {}
            self.attn = compile(attention(score=attention_score), None, hidden, dtype, **extra)
        self.head = Linear("out")
        self.states = [st.name for st in self.decoder.states]
        self._eyes = {n: np.eye(n, dtype=self.dtype) for n in {source_vocab, target_vocab} if n}

    def init(self, seed: int = 0) -> dict:
        params = {f"dec.{k}": v for k, v in self.decoder.init(seed).items()}
        if self.encoder:
            params.update({f"enc.{k}": v for k, v in self.encoder.init(seed + 1).items()})
        if self.backward_encoder:
            params.update({f"encb.{k}": v for k, v in self.backward_encoder.init(seed + 4).items()})
        if self.attn:
            params.update({f"att.{k}": v for k, v in self.attn.init(seed + 2).items()})
        width = 2 * self.H if self.attn else self.H
        return {**params, **self.head.init(width, self.V, seed + 3, self.dtype)}

    @staticmethod
    def _own(params, prefix):
        return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}

    def _onehot(self, tokens: np.ndarray, n: int) -> np.ndarray:
        return self._eyes[n][tokens]

    # -- the passes -------------------------------------------------------------------------------------------
    @staticmethod
    def forced_steps(T: int, target, teacher_forcing: float, rng) -> np.ndarray:
        """forced[t]: step t + 1 reads the true token target[t] (else step t's own guess). One coin per step,
        drawn in order, so a run replays from the generator's state."""
        if target is None:
            return np.zeros(T, bool)
        if teacher_forcing >= 1:
            return np.ones(T, bool)
        if rng is None:
            return np.zeros(T, bool)
        return rng.uniform(size=T) < teacher_forcing

    def run(self, params: dict, source, target: np.ndarray | None, teacher_forcing: float = 1.0,
            rng: np.random.Generator | None = None, length: int | None = None, grads: bool = False,
            batch: int = 1):
        """Decode. With `target` (T, B): the loss (mean cross-entropy) and, if `grads`, its gradients; the
        decoder reads the true previous token with probability `teacher_forcing`. Without: greedy decoding
        for `length` steps (`batch` sequences when there is no source). Returns (loss or None, gradients or
        None, tokens (T, B), attention (T, B, S)).

        Steps whose inputs are all known beforehand run as one segment, one kernel call: a segment starts
        at step 0 or after a step that read its own guess, and goes on while the teacher forces."""
        B = target.shape[1] if target is not None else source.shape[1] if source is not None else batch
        T = target.shape[0] if target is not None else length
        enc_p, dec_p, att_p = self._own(params, "enc."), self._own(params, "dec."), self._own(params, "att.")
        state, memory, enc = {}, None, None
        if self.encoder is not None:
            xs = self._onehot(source, self.encoder.sizes["X"])
            enc_out, enc_final, enc_tape = self.encoder.forward(enc_p, xs)
            state, enc = enc_final, (xs, enc_out, enc_tape)
            if self.backward_encoder is not None:  # row j: h→_j + h←_j, where h← reads x_S .. x_j
                back = np.ascontiguousarray(xs[::-1])
                back_out, _, back_tape = self.backward_encoder.forward(self._own(params, "encb."), back)
                enc_out = enc_out + back_out[::-1]
                enc = (*enc, back, back_tape)
            memory = np.ascontiguousarray(enc_out.transpose(1, 0, 2))  # (B, S, H)
        state = {s: state.get(s, np.zeros((B, self.H), self.dtype)) for s in self.states}
        forced = self.forced_steps(T, target, teacher_forcing, rng)
        prev = np.full((1, B), self.start)
        segments, logits, tokens, weights = [], [], [], []
        t = 0
        while t < T:
            end = t + 1
            while end < T and forced[end - 1]:
                end += 1
            x = self._onehot(np.concatenate([prev, target[t:end - 1]]) if end > t + 1 else prev, self.V)
            h, final, tape = self.decoder.forward(dec_p, x, state)
            later = grads and end < T  # more passes follow before BPTT comes back here: the tapes are copied
            tape = self.decoder.keep(tape) if later else tape
            feat, att_tape = h, None
            if self.attn:
                a_out, _, att_tape = self.attn.forward(att_p, h, memory={"M": memory})
                att_tape = self.attn.keep(att_tape) if later else att_tape
                weights.append(a_out["alpha"])
                feat = np.concatenate([h, a_out["c"]], axis=2)
            z = self.head.forward(params, feat)
            guess = z.argmax(axis=2)
            segments.append(Segment(slice(t, end), x, state, h, feat, tape, att_tape))
            logits.append(z)
            tokens.append(guess)
            state, prev, t = final, guess[-1:], end
        alphas = np.concatenate(weights) if self.attn else None
        tokens = np.concatenate(tokens)
        if target is None:
            return None, None, tokens, alphas
        loss, d_logits = softmax_xent(np.concatenate(logits), target)
        if not grads:
            return loss, None, tokens, alphas
        return loss, self._backward(params, segments, d_logits, memory, enc), tokens, alphas

    def _backward(self, params, segments, d_logits, memory, enc) -> dict:
        """BPTT through the decoding segments, last first, the state gradient carried from each segment's
        start to the end of the one before; then through the encoder: the state gradient of decoder step 0
        is the gradient of the encoder's final state; attention sends its memory gradient to every encoder
        output."""
        grads = {k: np.zeros_like(v) for k, v in params.items()}
        dec_p, att_p = self._own(params, "dec."), self._own(params, "att.")
        carry = {s: np.zeros((d_logits.shape[1], self.H), self.dtype) for s in self.states}
        d_memory = np.zeros_like(memory) if memory is not None else None
        for g_head in reversed(self._head_grads(segments, d_logits)):
            for k, v in g_head.items():
                grads[k] += v
        d_feats = self.head.input_grad(params, d_logits)  # step by step, the products each segment's own call makes
        for steps, x, state, h, _, tape, att_tape in reversed(segments):
            d_feat = d_feats[steps]
            d_h = d_feat[:, :, :self.H]
            if self.attn:
                g_att = self.attn.backward(att_p, h, {"c": np.ascontiguousarray(d_feat[:, :, self.H:], self.dtype)},
                                           memory={"M": memory}, tape=att_tape)
                d_h = d_h + g_att.pop("q")
                d_memory += g_att.pop("M")
                for k, v in g_att.items():
                    grads[f"att.{k}"] += v
            g = self.decoder.backward(dec_p, x, np.ascontiguousarray(d_h, self.dtype), carry, state, tape=tape,
                                      input_grads=False)  # (x: one-hot tokens)
            carry = {s: g.pop(s) for s in self.states}
            for k, v in g.items():
                grads[f"dec.{k}"] += v
        if enc is not None:
            xs, _, tape = enc[:3]
            d_out = d_memory.transpose(1, 0, 2) if d_memory is not None else None
            d_out = np.ascontiguousarray(d_out) if d_out is not None else None
            g = self.encoder.backward(self._own(params, "enc."), xs, d_out, carry, tape=tape, input_grads=False)
            for k, v in g.items():
                if f"enc.{k}" in grads:
                    grads[f"enc.{k}"] += v
            if self.backward_encoder is not None:  # the memory's gradient reaches h←_j as it reaches h→_j
                back, back_tape = enc[3:]
                d_back = np.ascontiguousarray(d_out[::-1]) if d_out is not None else None
                g = self.backward_encoder.backward(self._own(params, "encb."), back, d_back, tape=back_tape,
                                                   input_grads=False)
                for k, v in g.items():
                    if f"encb.{k}" in grads:
                        grads[f"encb.{k}"] += v
        return grads

    def _head_grads(self, segments: list, d_logits: np.ndarray) -> list[dict]:
        """The output layer's parameter gradients of each segment, over its steps' rows. When every step is a
        segment of its own (the decoder read its own guesses), one stacked product gives them all."""
        if len(segments) < len(d_logits):
            return [self.head.param_grads(seg.feat, d_logits[seg.steps]) for seg in segments]
        per_step = self.head.step_grads(np.concatenate([seg.feat for seg in segments]), d_logits)
        return [{k: v[t] for k, v in per_step.items()} for t in range(len(segments))]
