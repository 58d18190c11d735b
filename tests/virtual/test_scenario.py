import numpy as np

from edgetwin.virtual.scenario import RandomScenario, parse_meal_spec


def test_random_days_follow_the_cohort_meal_convention() -> None:
    meals = RandomScenario(seed=7).meals(days=200)
    minutes = np.array([m.minute % 1440 for m in meals])
    grams = np.array([m.eaten_g for m in meals])
    assert minutes.min() >= 300 and minutes.max() <= 23 * 60
    lunch = grams[(minutes >= 600) & (minutes <= 840) & (grams > 30)]
    assert abs(lunch.mean() - 70) < 3
    # Three main meals at p = .95, three snacks at p = .3: about 3.75 a day.
    assert 3.4 < len(meals) / 200 < 4.1
    assert all(m.announced_g == m.eaten_g for m in meals)


def test_imperfect_patients_miscount_and_forget() -> None:
    meals = RandomScenario(seed=7, carb_error=0.3, p_missed_bolus=0.1, p_unannounced_snack=1.0).meals(
        days=100
    )
    ratios = np.array([m.announced_g / m.eaten_g for m in meals if m.announced_g > 0])
    assert ratios.min() >= 0.69 and ratios.max() <= 1.31 and ratios.std() > 0.1
    forgotten = [m for m in meals if m.announced_g == 0]
    assert any(m.eaten_g <= 25 for m in forgotten)  # the snacks
    assert any(m.eaten_g > 30 for m in forgotten)  # some missed meal boluses


def test_meal_spec_parsing() -> None:
    assert parse_meal_spec("07:30=45") == (450, 45.0)
    for bad in ("7=45", "07:30", "07:30=-5", "25x:00=3"):
        try:
            parse_meal_spec(bad)
        except ValueError:
            continue
        raise AssertionError(bad)
