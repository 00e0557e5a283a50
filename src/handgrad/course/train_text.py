"""The words of `handgrad grade --train` (handgrad.course.train) in English and Russian: the
report's frame, and the quick checks' reasons (handgrad.course.adapter writes them in English;
`say` puts them in Russian, numbers as they are)."""

from __future__ import annotations

from typing import Any

TEXT: dict[str, dict[str, Any]] = {
    "en": {
        "header": "grade --train {path}: your classes train two networks beside handgrad's own",
        "yours": "yours",
        "scaled": "yours ({reason})",
        "reference": "handgrad's ({why}: {reason})",
        "missing": "not written",
        "wrong": "failed its check",
        "nothing": "grade --train: {path} holds no class to train (task_4_4.py, task_4_5.py)",
        "none_written": "grade --train: no class of task 4.4/4.5 works yet; nothing to train",
        "net": "{name}: {layers}, {loss}, SGD lr {lr}, {epochs} epochs, {batch}",
        "full": "full batch",
        "batch": "batches of {n}",
        "columns": ("", "your network", "handgrad's"),
        "final": "final loss",
        "accuracy": "test accuracy",
        "diverged": "diverged (epoch {e})",
        "failed": "your network failed: {detail}",
        "skip": "{name}: skipped (none of its classes is yours)",
        "why+": "note: the parabola's steps are N times handgrad's: MSELoss.backward gives "
        "2(p - t) and Linear.backward sums over the batch (the missing 1/N)",
        "why-": "note: the parabola's steps are 1/N of handgrad's: the 1/N is taken twice, in "
        "the loss and in the layer",
        "normalised": "note: digits has no loop of yours, so each class's 1/N convention is "
        "normalised there",
        "moved": "note: the 1/N sits in your loss instead of the layer: the same update",
    },
    "ru": {
        "header": "grade --train {path}: ваши классы обучают две сети рядом с сетью handgrad",
        "yours": "ваш",
        "scaled": "ваш ({reason})",
        "reference": "handgrad ({why}: {reason})",
        "missing": "не написан",
        "wrong": "не прошёл проверку",
        "nothing": "grade --train: в {path} нет классов для обучения (task_4_4.py, task_4_5.py)",
        "none_written": "grade --train: ни один класс задач 4.4/4.5 не работает; обучать нечего",
        "net": "{name}: {layers}, {loss}, SGD lr {lr}, эпох: {epochs}, {batch}",
        "full": "полный батч",
        "batch": "батчи по {n}",
        "columns": ("", "ваша сеть", "handgrad"),
        "final": "итоговая ошибка",
        "accuracy": "точность на тесте",
        "diverged": "разошлась (эпоха {e})",
        "failed": "ваша сеть упала: {detail}",
        "skip": "{name}: пропущено (ни один её класс не ваш)",
        "why+": "замечание: шаг на параболе в N раз больше, чем у handgrad: MSELoss.backward "
        "даёт 2(p - t), а Linear.backward суммирует по батчу (пропущен 1/N)",
        "why-": "замечание: шаг на параболе в N раз меньше, чем у handgrad: 1/N взят дважды, и "
        "в функции потерь, и в слое",
        "normalised": "замечание: на digits вашего цикла нет, поэтому соглашение каждого класса "
        "об 1/N там приведено к общему",
        "moved": "замечание: 1/N стоит в вашей функции потерь, а не в слое: шаг тот же",
    },
}
LOSS_NAME = {"MSE": "MSE", "CE": "softmax cross-entropy"}
RU_REASONS = {  # the checks' words (adapter.py, this file) in Russian; numbers stay as they are
    "not in the files given": "нет в данных файлах",
    "raises NotImplementedError (not written yet)": "бросает NotImplementedError (ещё не написан)",
    "does not import": "не импортируется",
    "backward must return (dW, db, dinputs)": "backward должен вернуть (dW, db, dinputs)",
    "dW, db sum over the batch where the contract averages": "dW, db суммируются по батчу, "
    "а по условию усредняются",
    "backward without the 1/N": "backward без 1/N",
    "with a 1/N the contract leaves to the layer": "с 1/N, который по условию берёт слой",
    "dinputs = dvalues where x > 0, else 0": "dinputs = dvalues при x > 0, иначе 0",
    "raised": "бросил",
    "expected": "ожидалось",
    "got": "получено",
    "shape": "форма",
    " at ": " в ",
}


def say(reason: str, lang: str) -> str:
    """A check's reason in `lang` (the checks write English)."""
    if lang == "ru":
        for en, ru in RU_REASONS.items():
            reason = reason.replace(en, ru)
    return reason
