"""The subjective viewing test window: keyboard only, grey surround, no metrics.

Flow: participant id → (resume notice) → training trials → "the test begins" → test trials
with breaks → thanks. Each trial shows two versions of one photo side by side at a fixed
size on a mid-grey surround; the participant rates them on the 7-level scale of the MND
paper (Table V) and may look at the clean original at any time.

Keys (also printed on screen):

- ``1`` … ``7``: left much better (+3) … same (0, key 4) … right much better (−3);
  ``←``/``→`` move the choice; ``Enter`` or ``Space`` confirms it.
- ``R``: show / hide the original (reference) photo.
- ``Space``: go on from an instruction or break screen (once the break is over).
- ``Esc``: pause (answers are saved after every trial); ``Esc`` again closes the window. The
  same participant id resumes where it stopped.

The window only drives a :class:`jndguard.core.study.Session`, which plans the trials and
writes the results; it computes nothing itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QElapsedTimer, QEvent, QObject, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImageReader, QKeyEvent, QPalette, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from jndguard.core.study import (
    SCALE,
    TEST,
    TRAINING,
    Presentation,
    Session,
    Study,
    StudyError,
    default_results_dir,
    load_study,
    next_participant_id,
)

logger = logging.getLogger(__name__)

#: Key → rating: 1 = left much better (+3) … 4 = same (0) … 7 = right much better (−3).
RATING_KEYS = {getattr(Qt.Key, f"Key_{n}"): 4 - n for n in range(1, 8)}
SHORT_LABELS = (
    "Left much\nbetter",
    "Left\nbetter",
    "Left slightly\nbetter",
    "Same",
    "Right slightly\nbetter",
    "Right\nbetter",
    "Right much\nbetter",
)


def _text_colour(grey: int) -> str:
    return "#101010" if grey >= 110 else "#f0f0f0"


def load_pixmap(path: Path, view_size: int, dpr: float = 1.0) -> QPixmap:
    """A photo (EXIF orientation applied) scaled so its long edge is ``view_size`` screen
    pixels (0: its own size), with the device pixel ratio set so one image pixel of the
    scaled picture is one physical screen pixel."""
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    img = reader.read()
    if img.isNull():
        raise StudyError(f"{path}: cannot read ({reader.errorString()})")
    if view_size > 0:
        img = img.scaled(
            QSize(view_size, view_size),
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
    pm = QPixmap.fromImage(img)
    pm.setDevicePixelRatio(dpr)
    return pm


class _Picture(QLabel):
    """One image at a fixed size; an empty grey box while nothing is shown."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)

    def show_pixmap(self, pm: QPixmap | None) -> None:
        if pm is None:
            self.clear()
            return
        self.setPixmap(pm)
        self.setFixedSize(pm.deviceIndependentSize().toSize())


class _RatingBar(QWidget):
    """The seven choices of the scale, with their keys; the current choice highlighted."""

    def __init__(self, text_colour: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        lay = QHBoxLayout(self)
        lay.setSpacing(8)
        lay.setContentsMargins(0, 0, 0, 0)
        self.boxes: list[QLabel] = []
        self._colour = text_colour
        for n, ((value, _), short) in enumerate(zip(SCALE, SHORT_LABELS), 1):
            box = QLabel(
                f"<b>{n}</b><br>{short.replace(chr(10), '<br>')}<br>"
                f"<span style='font-size:small'>{value:+d}</span>".replace("+0", "0")
            )
            box.setAlignment(Qt.AlignmentFlag.AlignCenter)
            box.setTextFormat(Qt.TextFormat.RichText)
            box.setMinimumWidth(140)
            box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            self.boxes.append(box)
            lay.addWidget(box)
        self.set_choice(None)

    def set_choice(self, index: int | None) -> None:
        for n, box in enumerate(self.boxes):
            on = n == index
            box.setStyleSheet(
                f"QLabel {{ color: {'#ffffff' if on else self._colour}; padding: 8px; border-radius: 6px;"
                f" font-size: 12pt;"
                f" border: 2px solid {'#1d4f91' if on else 'rgba(0,0,0,60)'};"
                f" background: {'#2f6fc0' if on else 'rgba(255,255,255,25)'}; }}"
            )


class _Message(QWidget):
    """A centred column of text (instructions, breaks, thanks)."""

    WIDTH = 900

    def __init__(self, text_colour: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        column = QWidget()
        column.setFixedWidth(self.WIDTH)
        outer.addWidget(column)
        outer.addStretch(1)
        lay = QVBoxLayout(column)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(14)
        lay.addStretch(1)
        self.title = QLabel()
        self.body = QLabel()
        self.hint = QLabel()
        for lab, size in ((self.title, 26), (self.body, 15), (self.hint, 14)):
            lab.setAlignment(Qt.AlignmentFlag.AlignCenter)
            lab.setWordWrap(True)
            lab.setTextFormat(Qt.TextFormat.RichText)
            font = lab.font()
            font.setPointSize(size)
            font.setBold(lab is self.title)
            lab.setFont(font)
            lab.setStyleSheet(f"color: {text_colour};")
            lab.setFixedWidth(self.WIDTH)
            lay.addWidget(lab)
        self.extra = QVBoxLayout()
        lay.addLayout(self.extra)
        lay.addStretch(2)

    def set(self, title: str, body: str = "", hint: str = "") -> None:
        self.title.setText(title)
        self.body.setText(body)
        self.body.setVisible(bool(body))
        self.hint.setText(hint)
        self.hint.setVisible(bool(hint))


class _KeyFilter(QObject):
    """Sends the window every key press, whichever child has focus (the id field excepted)."""

    def __init__(self, window: StudyWindow) -> None:
        super().__init__(window)
        self.window = window

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.KeyPress and obj is not self.window.id_edit:
            return self.window.handle_key(event)  # type: ignore[arg-type]
        return False


class StudyWindow(QWidget):
    """Runs one participant's session of a study (see module docstring).

    Args:
        study: the study (see :func:`jndguard.core.study.load_study`).
        results_dir: where results go (default: ``<study>-results/`` next to the manifest).
        participant: anonymous id to start with (the id screen still asks to confirm).
        parent: parent widget (the window is a top-level window either way).

    Attributes:
        state: ``"intro" | "message" | "trial" | "reference" | "gap" | "break" | "paused" | "done"``.
        session: the :class:`Session`, once an id was entered.
    """

    ratingRecorded = Signal(object)  # jndguard.core.study.Rating
    sessionFinished = Signal(object)  # Session
    stateChanged = Signal(str)

    def __init__(
        self,
        study: Study,
        results_dir: str | Path | None = None,
        participant: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.study = study
        self.results_dir = Path(results_dir) if results_dir is not None else default_results_dir(study)
        self.session: Session | None = None
        self.state = "intro"
        self._choice: int | None = None  # index into SCALE
        self._reference_views = 0
        self._clock = QElapsedTimer()
        self._resume_state = "trial"
        self._continue: Callable[[], None] | None = None  # what Space does on a message screen
        self._pixmaps: dict[Path, QPixmap] = {}
        self._break_left = 0
        grey = study.settings.grey
        self._fg = _text_colour(grey)
        self.setWindowTitle(f"JNDGuard study — {study.name}")
        self.setAutoFillBackground(True)
        pal = self.palette()
        pal.setColor(QPalette.ColorRole.Window, QColor(grey, grey, grey))
        pal.setColor(QPalette.ColorRole.WindowText, QColor(self._fg))
        self.setPalette(pal)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        self.stack = QStackedWidget(self)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(24, 16, 24, 16)
        lay.addWidget(self.stack)

        # -- intro: the id and the instructions
        self.intro = _Message(self._fg)
        scale = "".join(
            f"<tr><td align='right'><b>{n}</b>&nbsp;&nbsp;</td><td>{label}</td></tr>"
            for n, (_, label) in enumerate(SCALE, 1)
        )
        self.intro.set(
            "Image quality comparison",
            "<p>Each screen shows two versions of the same photo. Compare their quality and rate "
            f"them with the keys:</p><table align='center'>{scale}</table>"
            "<p>Use ← → to change your choice and <b>Enter</b> to confirm it. Press <b>R</b> to see the "
            "original photo, and again to come back. <b>Esc</b> pauses. There are no right answers; "
            "take your time.</p>",
            "Type your participant code (no name, please) and press <b>Enter</b>.",
        )
        self.id_edit = QLineEdit(participant or next_participant_id(self.results_dir))
        self.id_edit.setMaxLength(32)
        self.id_edit.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.id_edit.setFixedWidth(220)
        self.id_edit.setStyleSheet("font-size: 18pt; padding: 4px;")
        self.id_edit.returnPressed.connect(self._start)
        self.id_error = QLabel()
        self.id_error.setStyleSheet("color: #7a0000; font-size: 12pt;")
        self.id_error.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.intro.extra.addWidget(self.id_edit, 0, Qt.AlignmentFlag.AlignHCenter)
        self.intro.extra.addWidget(self.id_error, 0, Qt.AlignmentFlag.AlignHCenter)
        self.stack.addWidget(self.intro)

        # -- instruction / break / pause / thanks screens
        self.message = _Message(self._fg)
        self.stack.addWidget(self.message)

        # -- a trial
        self.trial_page = QWidget()
        tl = QVBoxLayout(self.trial_page)
        tl.setContentsMargins(0, 0, 0, 0)
        self.phase_label = QLabel()
        self.phase_label.setStyleSheet(f"color: {self._fg}; font-size: 12pt;")
        self.phase_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        tl.addWidget(self.phase_label)
        tl.addStretch(1)
        self.pictures = QStackedWidget()
        pair = QWidget()
        pl = QHBoxLayout(pair)
        pl.setSpacing(48)
        pl.addStretch(1)
        self.left = _Picture()
        self.right = _Picture()
        for side, pic in (("Left", self.left), ("Right", self.right)):
            col = QVBoxLayout()
            col.setSpacing(10)
            col.addStretch(1)
            col.addWidget(pic, 0, Qt.AlignmentFlag.AlignCenter)
            cap = QLabel(side)
            cap.setAlignment(Qt.AlignmentFlag.AlignCenter)
            cap.setStyleSheet(f"color: {self._fg}; font-size: 13pt;")
            col.addWidget(cap)
            col.addStretch(1)
            pl.addLayout(col)
        pl.addStretch(1)
        self.pictures.addWidget(pair)
        ref = QWidget()
        rl = QVBoxLayout(ref)
        rl.setSpacing(10)
        rl.addStretch(1)
        self.reference = _Picture()
        rl.addWidget(self.reference, 0, Qt.AlignmentFlag.AlignCenter)
        rcap = QLabel("Original (reference) — press R to go back")
        rcap.setAlignment(Qt.AlignmentFlag.AlignCenter)
        rcap.setStyleSheet(f"color: {self._fg}; font-size: 13pt;")
        rl.addWidget(rcap)
        rl.addStretch(1)
        self.pictures.addWidget(ref)
        tl.addWidget(self.pictures, 0, Qt.AlignmentFlag.AlignCenter)
        tl.addStretch(1)
        self.rating_bar = _RatingBar(self._fg)
        tl.addWidget(self.rating_bar, 0, Qt.AlignmentFlag.AlignHCenter)
        self.keys_hint = QLabel("1–7 or ← → to choose · Enter to confirm · R original · Esc pause")
        self.keys_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.keys_hint.setStyleSheet(f"color: {self._fg}; font-size: 11pt;")
        tl.addWidget(self.keys_hint)
        self.stack.addWidget(self.trial_page)

        # -- the grey pause between trials
        self.gap_page = QWidget()
        self.stack.addWidget(self.gap_page)

        for w in self.findChildren(QWidget):
            if w is not self.id_edit:
                w.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self._filter = _KeyFilter(self)
        for w in self.findChildren(QWidget):
            w.installEventFilter(self._filter)
        self._break_timer = QTimer(self, interval=1000)
        self._break_timer.timeout.connect(self._tick_break)
        self._set_state("intro")
        self.stack.setCurrentWidget(self.intro)
        self.id_edit.setFocus()
        self.id_edit.selectAll()

    # ------------------------------------------------------------------ state
    def _set_state(self, state: str) -> None:
        self.state = state
        self.stateChanged.emit(state)

    @property
    def current(self) -> Presentation | None:
        """The presentation on screen (or next), None before the id and after the end."""
        return self.session.current if self.session is not None else None

    @property
    def choice(self) -> int | None:
        """The rating currently selected (+3 … −3), or None."""
        return None if self._choice is None else SCALE[self._choice][0]

    def _show_message(self, state: str, title: str, body: str = "", hint: str = "", then=None) -> None:
        self.message.set(title, body, hint)
        self._continue = then
        self.stack.setCurrentWidget(self.message)
        self._set_state(state)
        self.setFocus()

    # ------------------------------------------------------------------ start
    def _start(self) -> None:
        pid = self.id_edit.text().strip()
        try:
            missing = self.study.missing_files()
            if missing:
                raise StudyError(f"{len(missing)} image file(s) of the study are missing, e.g. {missing[0]}")
            session = Session(self.study, pid, self.results_dir)
        except StudyError as exc:
            self.id_error.setText(str(exc))
            return
        if session.finished:
            self.id_error.setText(
                f"Participant {session.participant} has already finished this study. Use another code."
            )
            return
        self.id_error.clear()
        self.session = session
        self.id_edit.setEnabled(False)
        self.setFocus()
        if session.resumed:
            self._show_message(
                "message",
                "Welcome back",
                f"You stopped after {session.done} of {len(session.plan)} screens. "
                "Your earlier answers are saved; the study continues where you left off.",
                "Press <b>Space</b> to continue.",
                self._continue_plan,
            )
        else:
            self._continue_plan()

    def _continue_plan(self) -> None:
        """Show what comes next: a training/test introduction, the next trial, or the end."""
        s = self.session
        if s is None:
            return
        p = s.current
        if p is None:
            self._finish()
            return
        if p.phase == TRAINING and p.seq == 1 and self.state != "intro-training":
            self._show_message(
                "intro-training",
                "Practice",
                f"The first {s.n_training} screens are practice, to get used to the task. "
                "They are not part of the results.",
                "Press <b>Space</b> to begin.",
                self._show_trial,
            )
            return
        if p.phase == TEST and p.seq == 1 and self.state != "intro-test":
            practice = "Practice is over. " if s.n_training else ""
            self._show_message(
                "intro-test",
                "The test begins",
                f"{practice}{s.n_test} screens follow, with short breaks in between.",
                "Press <b>Space</b> to start.",
                self._show_trial,
            )
            return
        self._show_trial()

    # ------------------------------------------------------------------ trials
    def _pixmap(self, path: Path) -> QPixmap:
        pm = self._pixmaps.get(path)
        if pm is None:
            pm = load_pixmap(path, self.study.settings.view_size, self.devicePixelRatioF())
            self._pixmaps[path] = pm
        return pm

    def _preload_next(self) -> None:
        s = self.session
        if s is None or s.done + 1 >= len(s.plan):
            return
        nxt = s.plan[s.done + 1]
        keep = {nxt.trial.clean, nxt.left_path, nxt.right_path}
        if s.current is not None:
            keep |= {s.current.trial.clean, s.current.left_path, s.current.right_path}
        self._pixmaps = {k: v for k, v in self._pixmaps.items() if k in keep}
        try:
            for path in (nxt.left_path, nxt.right_path, nxt.trial.clean):
                self._pixmap(path)
        except StudyError:
            logger.warning("cannot preload the next trial", exc_info=True)

    def _show_trial(self) -> None:
        s = self.session
        p = s.current if s is not None else None
        if p is None:
            self._finish()
            return
        try:
            self.left.show_pixmap(self._pixmap(p.left_path))
            self.right.show_pixmap(self._pixmap(p.right_path))
            self.reference.show_pixmap(self._pixmap(p.trial.clean))
        except StudyError as exc:
            self._show_message(
                "paused",
                "A study image cannot be shown",
                str(exc),
                "Press <b>Esc</b> to close. Your answers so far are saved.",
            )
            return
        if p.phase == TRAINING:
            self.phase_label.setText(f"Practice {p.seq} of {s.n_training}")
        else:
            self.phase_label.setText(f"{p.seq} of {s.n_test}")
        self._choice = None
        self._reference_views = 0
        self.rating_bar.set_choice(None)
        self.pictures.setCurrentIndex(0)
        self.stack.setCurrentWidget(self.trial_page)
        self._set_state("trial")
        self._clock.start()
        QTimer.singleShot(0, self._preload_next)

    def _toggle_reference(self) -> None:
        if self.state == "trial":
            self.pictures.setCurrentIndex(1)
            self._reference_views += 1
            self._set_state("reference")
        elif self.state == "reference":
            self.pictures.setCurrentIndex(0)
            self._set_state("trial")

    def _select(self, index: int) -> None:
        self._choice = max(0, min(len(SCALE) - 1, index))
        self.rating_bar.set_choice(self._choice)

    def _confirm(self) -> None:
        s = self.session
        if s is None or self._choice is None or self.state != "trial":
            return
        rating = SCALE[self._choice][0]
        elapsed = int(self._clock.elapsed()) if self._clock.isValid() else 0
        try:
            row = s.record(rating, response_ms=elapsed, reference_views=self._reference_views)
        except (OSError, StudyError) as exc:
            self._show_message(
                "paused",
                "The answer could not be saved",
                str(exc),
                "Press <b>Space</b> to try again or <b>Esc</b> to close.",
                self._show_trial,
            )
            return
        self.ratingRecorded.emit(row)
        self._choice = None
        if s.finished:
            self._finish()
            return
        if s.break_due():
            self._start_break()
            return
        gap = self.study.settings.gap_ms
        nxt = s.current
        if nxt is not None and nxt.phase != row.phase:
            self._continue_plan()
        elif gap > 0:
            self.stack.setCurrentWidget(self.gap_page)
            self._set_state("gap")
            QTimer.singleShot(gap, self._after_gap)
        else:
            self._show_trial()

    def _after_gap(self) -> None:
        if self.state == "gap":
            self._continue_plan()

    # ------------------------------------------------------------------ breaks, pause, end
    def _start_break(self) -> None:
        s = self.session
        self._break_left = self.study.settings.break_seconds
        done = s.test_done if s else 0
        total = s.n_test if s else 0
        self._show_message(
            "break",
            "Time for a short break",
            f"{done} of {total} done. Rest your eyes for a moment.",
            self._break_hint(),
            self._continue_plan,
        )
        if self._break_left > 0:
            self._break_timer.start()

    def _break_hint(self) -> str:
        if self._break_left > 0:
            return f"You can go on in {self._break_left} s."
        return "Press <b>Space</b> when you are ready."

    def _tick_break(self) -> None:
        self._break_left = max(0, self._break_left - 1)
        self.message.set(self.message.title.text(), self.message.body.text(), self._break_hint())
        if self._break_left == 0:
            self._break_timer.stop()

    def _pause(self) -> None:
        self._resume_state = self.state
        self._break_timer.stop()
        done = self.session.done if self.session else 0
        self._show_message(
            "paused",
            "Paused",
            f"Your {done} answer{'s are' if done != 1 else ' is'} saved.",
            "Press <b>Space</b> to continue, or <b>Esc</b> to stop now "
            "(you can resume later with the same code).",
            self._continue_plan,
        )

    def _finish(self) -> None:
        self._break_timer.stop()
        self._show_message(
            "done", "Thank you!", "You have finished. Your answers are saved.", "Press <b>Esc</b> to close."
        )
        if self.session is not None:
            self.sessionFinished.emit(self.session)

    # ------------------------------------------------------------------ keys
    def handle_key(self, event: QKeyEvent) -> bool:
        """Act on one key press; True when it was used."""
        key = event.key()
        state = self.state
        if state == "intro":
            if key == Qt.Key.Key_Escape:
                self.close()
                return True
            return False
        if key == Qt.Key.Key_Escape:
            if state in ("paused", "done"):
                self.close()
            else:
                self._pause()
            return True
        if state in ("trial", "reference") and key == Qt.Key.Key_R:
            self._toggle_reference()
            return True
        if state == "trial":
            if key in RATING_KEYS:
                self._select(3 - RATING_KEYS[key])
                return True
            if key in (Qt.Key.Key_Left, Qt.Key.Key_Right):
                start = 3 if self._choice is None else self._choice + (-1 if key == Qt.Key.Key_Left else 1)
                self._select(start)
                return True
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space):
                self._confirm()
                return True
            return False
        if key == Qt.Key.Key_Space and state in (
            "message",
            "intro-training",
            "intro-test",
            "break",
            "paused",
        ):
            if state == "break" and self._break_left > 0:
                return True
            then, self._continue = self._continue, None
            if then is not None:
                then()
            return True
        return False

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if not self.handle_key(event):
            super().keyPressEvent(event)

    def closeEvent(self, event) -> None:
        self._break_timer.stop()
        super().closeEvent(event)


def open_study(
    study_path: str | Path,
    parent: QWidget | None = None,
    *,
    results_dir: str | Path | None = None,
    participant: str | None = None,
    fullscreen: bool = True,
) -> StudyWindow:
    """Open a study in its own (full-screen) window and return it.

    Args:
        study_path: the study manifest (``jndguard study build`` writes one).
        parent: owning widget (e.g. the main window); the study is a separate top-level window.
        results_dir: results folder (default: ``<study>-results/`` next to the manifest).
        participant: participant id to suggest.
        fullscreen: full screen (the default for real sessions) or a normal window.

    Raises:
        StudyError: the manifest cannot be read or is inconsistent.
    """
    study = load_study(study_path)
    from jndguard.gui.qtapp import show_window

    return show_window(lambda: StudyWindow(study, results_dir=results_dir, participant=participant,
                                           parent=parent), fullscreen, (1400, 900))


__all__ = ["RATING_KEYS", "StudyWindow", "load_pixmap", "open_study"]
