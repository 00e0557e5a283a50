"""The lab as a course: the student workspace (`handgrad lab new`), the grader that names the
mistake (`handgrad grade`), and the student's own layers training a network (`--train`)."""
