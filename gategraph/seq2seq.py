"""Sequence to sequence: an encoder reads the source, a decoder writes the target one token at a time,
optionally attending to the encoder's outputs (Luong et al. 2015: c_t = attention(M, h_t), the output layer
reads [h_t, c_t]). A bidirectional encoder reads the source both ways; the memory's row j is then
h→_j + h←_j, so that it holds x_j as the latest input of both directions (the forward state alone sums up
x_1 .. x_j), and the decoder starts from the forward encoder's final state.

Training feeds the decoder, at each step, the true previous token with probability `teacher_forcing`, else
its own previous guess (scheduled sampling when the ratio changes over training); inference decodes
greedily. The decoder runs one step per kernel call so that a step's input may depend on the step before;
BPTT goes back through the same steps (each kernel's backward pass, with the state gradient carried from
step to step). Tokens go in as one-hot vectors. With no source (`source_vocab=None`) it is a language model.

Imports: numpy, gategraph.kernel, gategraph.models, gategraph.cells, gategraph.errors.
"""

from __future__ import annotations

import numpy as np

from gategraph.cells import attention
from gategraph.errors import SpecError
from gategraph.kernel import compile
from gategraph.models import Linear, softmax_xent
from gategraph.spec import Cell

SCORES = ("dot", "general", "additive")


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
        return np.eye(n, dtype=self.dtype)[tokens]

    # -- the passes -------------------------------------------------------------------------------------------
    def run(self, params: dict, source, target: np.ndarray | None, teacher_forcing: float = 1.0,
            rng: np.random.Generator | None = None, length: int | None = None, grads: bool = False,
            batch: int = 1):
        """Decode. With `target` (T, B): the loss (mean cross-entropy) and, if `grads`, its gradients; the
        decoder reads the true previous token with probability `teacher_forcing`. Without: greedy decoding
        for `length` steps (`batch` sequences when there is no source). Returns (loss or None, gradients or
        None, tokens (T, B), attention (T, B, S))."""
        B = target.shape[1] if target is not None else source.shape[1] if source is not None else batch
        T = target.shape[0] if target is not None else length
        enc_p, dec_p = self._own(params, "enc."), self._own(params, "dec.")
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
        prev = np.full(B, self.start)
        steps, tokens, weights = [], [], []
        for t in range(T):
            x = self._onehot(prev, self.V)[None]
            out, final, _ = self.decoder.forward(dec_p, x, state)
            h = out[0]
            feat, alpha = h, None
            if self.attn:
                a_out, _, _ = self.attn.forward(self._own(params, "att."), h[None], memory={"M": memory})
                alpha = a_out["alpha"][0]
                feat = np.concatenate([h, a_out["c"][0]], axis=1)
            logits = self.head.forward(params, feat)
            guess = logits.argmax(axis=1)
            steps.append((x, state, h, feat, logits))
            tokens.append(guess)
            weights.append(alpha)
            state = final
            if target is not None and (teacher_forcing >= 1 or (rng is not None and rng.uniform() < teacher_forcing)):
                prev = target[t]
            else:
                prev = guess
        alphas = np.stack(weights) if self.attn else None
        if target is None:
            return None, None, np.stack(tokens), alphas
        logits = np.stack([s[4] for s in steps])
        loss, d_logits = softmax_xent(logits, target)
        if not grads:
            return loss, None, np.stack(tokens), alphas
        return loss, self._backward(params, steps, d_logits, memory, enc), np.stack(tokens), alphas

    def _backward(self, params, steps, d_logits, memory, enc) -> dict:
        """BPTT through the decoding steps, then through the encoder: the state gradient of decoder step 0
        is the gradient of the encoder's final state; attention sends its memory gradient to every encoder
        output."""
        grads = {k: np.zeros_like(v) for k, v in params.items()}
        dec_p = self._own(params, "dec.")
        carry = {s: np.zeros((d_logits.shape[1], self.H), self.dtype) for s in self.states}
        d_memory = np.zeros_like(memory) if memory is not None else None
        for t in reversed(range(len(steps))):
            x, state, h, feat, _ = steps[t]
            g_head, d_feat = self.head.backward(params, feat, d_logits[t])
            for k, v in g_head.items():
                grads[k] += v
            d_h = d_feat[:, :self.H]
            if self.attn:
                g_att = self.attn.backward(self._own(params, "att."), h[None],
                                           {"c": np.ascontiguousarray(d_feat[None, :, self.H:]).astype(self.dtype)},
                                           memory={"M": memory})
                d_h = d_h + g_att.pop("q")[0]
                d_memory += g_att.pop("M")
                for k, v in g_att.items():
                    grads[f"att.{k}"] += v
            g = self.decoder.backward(dec_p, x, np.ascontiguousarray(d_h[None]).astype(self.dtype), carry, state)
            carry = {s: g.pop(s) for s in self.states}
            g.pop("x")
            for k, v in g.items():
                grads[f"dec.{k}"] += v
        if enc is not None:
            xs, _, tape = enc[:3]
            d_out = d_memory.transpose(1, 0, 2) if d_memory is not None else None
            d_out = np.ascontiguousarray(d_out) if d_out is not None else None
            g = self.encoder.backward(self._own(params, "enc."), xs, d_out, carry, tape=tape)
            for k, v in g.items():
                if f"enc.{k}" in grads:
                    grads[f"enc.{k}"] += v
            if self.backward_encoder is not None:  # the memory's gradient reaches h←_j as it reaches h→_j
                back, back_tape = enc[3:]
                d_back = np.ascontiguousarray(d_out[::-1]) if d_out is not None else None
                g = self.backward_encoder.backward(self._own(params, "encb."), back, d_back, tape=back_tape)
                for k, v in g.items():
                    if f"encb.{k}" in grads:
                        grads[f"encb.{k}"] += v
        return grads
