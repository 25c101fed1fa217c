"""WAV handling for speech: any engine's output as one format, and back to a file.

Every recording is mono signed 16-bit PCM at :data:`SAMPLE_RATE` (espeak-ng's
own rate), so recordings can be joined, cached and compared as they are.
"""

from __future__ import annotations

import array
import io
import math
import sys
import wave

from speech.engines import SpeechFailed

SAMPLE_RATE = 22050
"""Every recording is mono 16-bit PCM at this rate: espeak-ng's own, so its
phrases are concatenated as they are; another engine's are resampled."""

SILENCE_LEVEL = 100
"""Of 32767: a sample below this counts as silence."""


def pcm_from_wav(data: bytes) -> tuple[int, int, int, bytes]:
    """(rate, channels, sample width, PCM) of a RIFF WAV, also of a streamed one.

    espeak-ng writing to a pipe cannot seek back to fill in the sizes, so its
    header claims ~2 GB: the data chunk is taken as what is actually there.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise SpeechFailed("the engine's output is not a WAV file")
    position = 12
    fmt: tuple[int, int, int] | None = None
    while position + 8 <= len(data):
        chunk_id = data[position : position + 4]
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        body = data[position + 8 : position + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                break
            encoding = int.from_bytes(body[0:2], "little")
            channels = int.from_bytes(body[2:4], "little")
            rate = int.from_bytes(body[4:8], "little")
            bits = int.from_bytes(body[14:16], "little")
            if encoding != 1 or bits not in (8, 16) or not channels or not rate:
                raise SpeechFailed(f"unsupported WAV format: encoding {encoding}, {bits} bits")
            fmt = (rate, channels, bits // 8)
        elif chunk_id == b"data":
            if fmt is None:
                break
            width = fmt[2] * fmt[1]
            usable = len(body) - len(body) % width
            return fmt[0], fmt[1], fmt[2], body[:usable]
        position += 8 + size + (size & 1)
    raise SpeechFailed("the engine's WAV has no format or no audio data")


def to_output_format(data: bytes) -> array.array:
    """The WAV's samples as mono signed 16-bit at :data:`SAMPLE_RATE`."""
    rate, channels, width, pcm = pcm_from_wav(data)
    if width == 1:  # unsigned 8-bit
        samples = array.array("h", ((b - 128) << 8 for b in pcm))
    else:
        samples = array.array("h")
        samples.frombytes(pcm)
        if sys.byteorder == "big":
            samples.byteswap()
    if channels > 1:
        samples = array.array(
            "h",
            (sum(samples[i : i + channels]) // channels for i in range(0, len(samples), channels)),
        )
    if rate != SAMPLE_RATE:
        samples = resample(samples, rate, SAMPLE_RATE)
    samples = trimmed(samples)
    if not samples:
        raise SpeechFailed("the engine produced only silence")
    return samples


def trimmed(samples: array.array) -> array.array:
    """Without the engine's leading and trailing silence (a 30 ms margin kept),
    so the pause between two languages is the one chosen here."""
    loud = [i for i in range(len(samples)) if abs(samples[i]) > SILENCE_LEVEL]
    if not loud:
        return array.array("h")
    margin = round(0.03 * SAMPLE_RATE)
    return samples[max(0, loud[0] - margin) : loud[-1] + margin + 1]


def resample(samples: array.array, source: int, target: int) -> array.array:
    """Linear interpolation: plenty for speech played on a TV's speakers."""
    if not samples:
        return array.array("h")
    count = max(1, round(len(samples) * target / source))
    step = source / target
    last = len(samples) - 1
    out = array.array("h", bytes(2 * count))
    for i in range(count):
        position = i * step
        left = min(int(position), last)
        right = min(left + 1, last)
        fraction = position - left
        out[i] = round(samples[left] + (samples[right] - samples[left]) * fraction)
    return out


def wav_bytes(samples: array.array) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        frames = samples
        if sys.byteorder == "big":
            frames = array.array("h", samples)
            frames.byteswap()
        out.writeframes(frames.tobytes())
    return buffer.getvalue()


def samples_of_wav(data: bytes) -> array.array:
    """The samples of a WAV in :data:`SAMPLE_RATE` mono 16-bit, or :class:`SpeechFailed`.

    Unlike :func:`to_output_format` nothing is trimmed or resampled: for
    reading back a recording this package wrote.
    """
    try:
        with wave.open(io.BytesIO(data), "rb") as recording:
            if (
                recording.getnchannels() != 1
                or recording.getsampwidth() != 2
                or recording.getframerate() != SAMPLE_RATE
            ):
                raise SpeechFailed("the WAV is not mono 16-bit at the speech rate")
            frames = recording.getnframes()
            pcm = recording.readframes(frames)
    except (wave.Error, EOFError, ValueError) as error:
        raise SpeechFailed(f"the WAV cannot be read: {error}") from error
    if not frames or len(pcm) != 2 * frames:
        raise SpeechFailed("the WAV is empty or truncated")
    samples = array.array("h")
    samples.frombytes(pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def rms(samples: array.array) -> float:
    """Root mean square of the samples (0 for none): how loud a recording is on average."""
    if not samples:
        return 0.0
    return math.sqrt(sum(s * s for s in samples) / len(samples))


def scaled(samples: array.array, gain: float) -> array.array:
    """The samples times ``gain`` (0 to 1): a volume applied in software, the
    same on every sound card and on none. Integer arithmetic keeps a long
    sentence's quarter-million samples to a few tens of milliseconds."""
    gain = max(0.0, min(1.0, gain))
    if gain == 1.0:
        return array.array("h", samples)
    factor = round(gain * 32768)
    return array.array("h", [sample * factor >> 15 for sample in samples])
