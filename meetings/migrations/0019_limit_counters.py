"""The join limiter's counters move from the cache (Redis) to the database (meetings.limits).

Counts held in Redis are not carried over: they reset once, at this deploy.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('meetings', '0018_second_factor_and_dial_in_at_rest'),
    ]

    operations = [
        migrations.CreateModel(
            name='LimitCounter',
            fields=[
                ('key', models.CharField(max_length=200, primary_key=True, serialize=False)),
                ('count', models.IntegerField()),
                ('expires_at', models.DateTimeField(db_index=True)),
            ],
        ),
    ]
