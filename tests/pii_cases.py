"""A labelled set for the PII scrubber, written for twin (Russian and English).

`⟦TYPE:value⟧` marks personal data the scrubber must replace by `[TYPE]` (for SECRET
only the value goes; its label stays). Lines without a mark are look-alikes that must
come through unchanged: dates, times, prices, order and tracking numbers, versions,
scores, plain links. The numbers are fictional: test ranges (555), documentation
IBANs, and card numbers from payment processors' test lists.
"""

from __future__ import annotations

import re

POSITIVES = """
напиши мне на ⟦EMAIL:kostya.vetrov@mailbox.example⟧
my email is ⟦EMAIL:jonas.weber@post.example⟧ send the tickets there
почта ⟦EMAIL:anna_coffee@yandex.example⟧, пиши туда
⟦EMAIL:info@kofeynya-na-ligovskom.example⟧ это для поставщиков
cc ⟦EMAIL:maria.santos+rent@gmail.example⟧ please
ответь на ⟦EMAIL:a.b.c@sub.domain.example⟧ до пятницы
(⟦EMAIL:tim@lisbon.example⟧)
email: ⟦EMAIL:x_y-z@mail.example⟧!
reach me at ⟦EMAIL:Bob.Sample@Example.ORG⟧ or tomorrow
скинь резюме на ⟦EMAIL:hr@company.example⟧ и ⟦EMAIL:boss@company.example⟧
мой рабочий ⟦EMAIL:v.petrova@uni.spb.example⟧
адрес для счета: ⟦EMAIL:billing@shop.example⟧.
pls write to ⟦EMAIL:support.team@app.example⟧ about the bug
"⟦EMAIL:quoted@name.example⟧"
почта сани ⟦EMAIL:sanya1995@mail.example⟧ если что
my other one is ⟦EMAIL:kv.2026@proton.example⟧
новый ящик ⟦EMAIL:lyosha.drums@rambler.example⟧ запиши
⟦EMAIL:orders@coffee-beans.example⟧ принимает заказы до 18
send it to ⟦EMAIL:first.last@company.co.example⟧ thanks
логин ⟦EMAIL:vika.keys@bk.example⟧ кстати
позвони мне ⟦PHONE:+7 921 555-13-07⟧
мой номер ⟦PHONE:8 (911) 555-42-18⟧
⟦PHONE:+7 (931) 555 27 64⟧ это Олег
набери ⟦PHONE:89215550199⟧ вечером
телефон сантехника: ⟦PHONE:+79115552233⟧
my number changed btw: ⟦PHONE:+351 912 555 018⟧
call me at ⟦PHONE:+44 20 7946 0958⟧ after 6
new phone ⟦PHONE:+49 30 901820⟧, landline
us number ⟦PHONE:+1 (415) 555-0132⟧
звони на ⟦PHONE:8-921-555-77-11⟧, я на связи
тел. ⟦PHONE:+7 812 555-01-23⟧ (городской)
⟦PHONE:8 800 555-35-35⟧ горячая линия
WhatsApp ⟦PHONE:+380 67 555 1234⟧
her mobile is ⟦PHONE:+33 6 12 34 56 78⟧
номер мамы ⟦PHONE:+7 (912) 555-66-77⟧, если что
позвони по ⟦PHONE:8 (495) 555-44-33⟧ это офис
мобильный ⟦PHONE:+7 903 555 1122⟧
call ⟦PHONE:+1 212 555 0199⟧ for reservations
вот мой ⟦PHONE:+7-999-555-12-34⟧
⟦PHONE:+7 921 5551307⟧ — новый номер
курьер: ⟦PHONE:89005553535⟧
контакт Лёши ⟦PHONE:+7 (981) 555-20-20⟧
ping me on ⟦PHONE:+351 935 555 447⟧ or email
phone: ⟦PHONE:+61 2 9374 4000⟧
ресепшн ⟦PHONE:+7 812 555 7788⟧ доб. 2
номер для связи ⟦PHONE:+7(921)555-99-88⟧
номер карты ⟦CARD:4539 1488 0343 6467⟧
карта ⟦CARD:5555 5555 5555 4444⟧ сбер
card ⟦CARD:4111 1111 1111 1111⟧ exp 12/29
кидай на ⟦CARD:2200123456789019⟧
⟦CARD:4012-8888-8888-1881⟧ visa
my card is ⟦CARD:378282246310005⟧ (amex)
переведи на ⟦CARD:5105 1051 0510 5100⟧, спасибо
вот ⟦CARD:6011111111111117⟧
номер: ⟦CARD:4000 0566 5566 5556⟧
на карту ⟦CARD:5200 8282 8282 8210⟧ пожалуйста
use ⟦CARD:3056 9309 0259 04⟧ for the booking
карта тинькофф ⟦CARD:4242 4242 4242 4242⟧
перевод на ⟦CARD:2201 3820 0000 0013⟧
card number ⟦CARD:6200000000000005⟧ thanks
сбер ⟦CARD:4276 3800 1234 5679⟧
here are the bank details: ⟦IBAN:DE89 3704 0044 0532 0130 00⟧
IBAN ⟦IBAN:GB82 WEST 1234 5698 7654 32⟧
реквизиты: ⟦IBAN:FR14 2004 1010 0505 0001 3M02 606⟧
pay to ⟦IBAN:NL91ABNA0417164300⟧ please
⟦IBAN:ES9121000418450200051332⟧ (spanish account)
счет ⟦IBAN:CH9300762011623852957⟧ в франках
iban: ⟦IBAN:PT50 0002 0123 1234 5678 9015 4⟧
transfer to ⟦IBAN:IT60 X054 2811 1010 0000 0123 456⟧ by friday
⟦IBAN:BE68539007547034⟧ is the landlord's
её IBAN ⟦IBAN:AT61 1904 3002 3457 3201⟧
send rent to ⟦IBAN:DE44 5001 0517 5407 3249 31⟧
⟦IBAN:PL61 1090 1014 0000 0712 1981 2874⟧ польский счёт
сбросить пароль: ⟦URL:https://accounts.example.com/reset?token=8f3a9c2e71b44d0f⟧
join here ⟦URL:https://t.me/joinchat/AAAAAEHbEkejzxUjAUCrYA⟧
⟦URL:https://api.example.com/v1/data?api_key=sk_live_51HxYz2eZvKYlo2C⟧ не свети
the doc: ⟦URL:https://docs.example.com/d/1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms/edit⟧
⟦URL:https://example.com/download?file=report.pdf&signature=a8f5f167f44f4964e6c998dee827110c⟧
вот ссылка на оплату ⟦URL:https://pay.example.com/checkout?session_id=cs_test_a1B2c3D4e5⟧
⟦URL:http://192.0.2.10/admin?password=hunter2⟧
invite: ⟦URL:https://discord.example/invite/Xk2p9QmZt7RwLs4Vb8Nc⟧
⟦URL:https://drive.example.com/file/d/0B7x9kQ2mN3pR5sT8vW1yZ4aB6cD/view⟧
звони через ⟦URL:https://meet.example.com/j/84529371?pwd=T2xWbk5yQ3dPZz09⟧
reset link ⟦URL:https://shop.example/account/reset/MjQ1OTg3NjU0MzIx-a1b2c3d4e5f6⟧
⟦URL:https://example.com/share?auth=eyJhbGciOiJIUzI1NiJ9⟧
магазин ⟦URL:https://coffee.example/confirm?code=993812⟧ подтверди
⟦URL:https://hooks.example.com/services/T00000000/B00000000/X7kP2mQ9vL4wR8tY1nB5cZ3d⟧
подключайся ⟦URL:https://zoom.example/j/5551234567?pwd=abc123XYZ⟧
пароль: ⟦SECRET:Pelmen2026!⟧
password: ⟦SECRET:hunter22⟧
wifi password is: ⟦SECRET:coffee4all⟧
мой пароль - ну ладно, пароль: ⟦SECRET:qwerty123⟧
код: ⟦SECRET:4829⟧ никому не говори
pin: ⟦SECRET:1234⟧
пин: ⟦SECRET:0000⟧ от домофона
token=⟦SECRET:ghp_16C7e42F292c6912E7710c838347Ae178B4a⟧
пароль от вайфая: ⟦SECRET:Kofe_Na_Ligovskom⟧
pass: ⟦SECRET:bassline99⟧
pwd = ⟦SECRET:s3cr3t⟧
код из смс: ⟦SECRET:517302⟧
the code is: ⟦SECRET:8841⟧
токен: ⟦SECRET:5512389:AAHk3jd9s8dk2j3k4l5m6n7b8v9c0x⟧
Password: ⟦SECRET:Tr0ub4dor&3⟧
пароль:⟦SECRET:12345678⟧
secret: ⟦SECRET:xoxb-1234-5678-abcd⟧
passcode: ⟦SECRET:9911⟧ for the door
"""

NEGATIVES = """
встреча 12.03.2026 в 18:30
see you on 2026-04-01 at 10:00
цена 1 500 000 руб, дорого
it costs $1,299.99 now
заказ 4815162342 уже отправлен
order #123456789012 shipped today
трек номер RA123456789CN
tracking 9400111899223856928499
счёт № 2026-0412-77
рейс SU 1234 в 14:05
версия 3.11.7 вышла
version 2.13.0 is out
счёт 3:1 в нашу пользу
score was 2:1, zenit won
в 2026 году поедем
the year 1995 was great
по курсу 92.45 за доллар
температура -12, холодно
скидка 15%, успей
5 000 шагов за день
ISBN 978-3-16-148410-0
артикул 100500200
between 10 and 20 people
12345
1234 5678
номер кабинета 305, третий этаж
приду в 19 00
кофе за 350 рублей
up 300% this year
страница 1024 в книге
ставка 7,5% годовых
ok see you at 9
room 214 at the hotel
с 9:00 до 21:00 работаем
2+2=4
вес 72.5 кг
рост 185 см, размер 44
координаты 59.9343, 30.3351
100 000 000 просмотров
https://example.com/menu посмотри
вот сайт https://coffee.example/about
https://ru.wikipedia.org/wiki/Кофе
check https://github.com/Lightning-AI/litgpt
www.example.com/catalog/shoes
@kostya_bass мой ник
пиши в личку @jonas_w
hashtag #кофе
время 23:59:59
Я на улице Ленина 15
кв. 42, подъезд 3
ticket 555 is closed
номер поезда 020А
IMEI не скажу
пароль я забыл
what's the password?
код ревью завтра
code review at 5
my pin is forgotten lol
the secret is out
passport control was slow
пасспорт не забудь
GB is big
DE and FR are neighbours
AB12 is a model name
мой iban скину позже
заплатил 2 200 и 1 300
билет 1234567
на 1 500 больше
телефон сел
phone died lol
номер я потерял
email me later
почту проверь
@ утром
user@ is incomplete
not.an.email@
1.2.3.4
10.0.0.1
call at 555
99 bottles
посылка 80081234567890
id 100200300400
ОГРН 1027700132195
1 234 567,89 ₽
$ 4,111,111
+5 к карме
-7 градусов
±3 минуты
0.000001
1e10
12:30-14:00
2026/11/28
28/11/2026
4111 1111 1111 1112
5555 5555 5555 4445
DE89 3704 0044 0532 0130 01
https://example.com/reset?next=/home
https://example.com/search?q=coffee+beans
https://youtu.be/dQw4w9WgXcQ
https://example.com/blog/2026/11/my-long-post-title-here
"""

# Written after the scrubber was tuned on the lines above, to see how it does on text it
# was not fitted to; the closing note of the dataset issue reports both sets.
HELDOUT = """
если что пиши ⟦EMAIL:lena.k@inbox.example⟧ или звони ⟦PHONE:+7 904 555 61 72⟧
оплата на ⟦CARD:4556 7375 8689 9855⟧ до среды
bank: ⟦IBAN:IE29 AIBK 9311 5212 3456 78⟧, ref: rent may
новый пароль = ⟦SECRET:Zima2026⟧
the wifi pass: ⟦SECRET:latte-art-42⟧
вот ссылка ⟦URL:https://cloud.example.ru/s/9kLm2NpQ4rSt6UvW⟧ там фотки
his number is ⟦PHONE:(212) 555-0147⟧
звякни ⟦PHONE:8 921 555 0 555⟧
⟦EMAIL:ivan-petrov.1990@list.example⟧ — это я
card: ⟦CARD:5425233430109903⟧
пин-код: ⟦SECRET:7788⟧
verify at ⟦URL:https://auth.example.com/verify?t=Qm9iU2FtcGxlMjAyNg⟧
iban ⟦IBAN:SE45 5000 0000 0583 9825 7466⟧
tel ⟦PHONE:+7 (4012) 55-12-34⟧
мой логин ⟦EMAIL:kot.pelmen@mail.example⟧ пароль: ⟦SECRET:pelmeni4ever⟧
api token: ⟦SECRET:tok_9f8e7d6c5b4a⟧
⟦PHONE:+49 151 55512345⟧ is my german number
перевод по номеру ⟦PHONE:+7 921 555 40 40⟧ в сбер
карта мамы ⟦CARD:2200 7001 2345 6781⟧
invite link ⟦URL:https://chat.example.com/join/Hq8Ry2Wx5Zt1Bv9N⟧
в 8 утра будильник
встреча в 14.30 у входа
цена 12 990 р
order 20261128-4471 delivered
паспорт получу 15.12
the meeting id is 555 123 4567
счёт за свет 1 843,20
код домофона не работает
пароль от вайфая спроси у Ани
call me maybe
7 8 9 10 ждём
версия 1.45.0 телетона
commit 29b9aef fixes it
1999-2026 все права
rgb(255, 128, 0)
+15 градусов завтра
трек RB987654321RU пришёл
https://example.org/events/2026/kofe-fest
https://t.me/kofeinya_news
номер 42 на ресепшене
"""

# Added with the second round of detectors: one-time codes without a colon, tax and
# insurance numbers (valid checksums; the look-alikes fail theirs), passports, bank
# accounts, unlabelled keys and bot tokens, wallets, seed phrases, invite links
# without a scheme, home addresses. Keys, tokens and wallets are made up in the
# shapes their issuers use; seed phrases are fresh BIP-39 phrases from nobody's wallet.
EXTENDED = """
твой код ⟦CODE:482913⟧ никому не говори
код ⟦CODE:123456⟧
код из смс ⟦CODE:7731⟧ вводи быстрее
код подтверждения ⟦CODE:55319⟧
вот код — ⟦CODE:904512⟧
the code is ⟦CODE:771204⟧
your code ⟦CODE:3391⟧ expires in 5 min
otp ⟦CODE:882201⟧ pls
пин ⟦CODE:4417⟧ от домофона
pin ⟦CODE:0925⟧ for the card, don't tell anyone
коды ⟦CODE:1182⟧ и ещё один придёт
verification code ⟦CODE:62910⟧
code ⟦CODE:2468⟧ to unlock the locker
код от ячейки ⟦CODE:7315⟧
ИНН ⟦INN:7104974650⟧
ИНН ⟦INN:7707083893⟧
счет ⟦ACCOUNT:40817810099910004312⟧
мой инн ⟦INN:194260834005⟧ для договора
инн организации ⟦INN:1396245957⟧, кпп потом скину
INN ⟦INN:763140573004⟧ please add to the invoice
ИНН: ⟦INN:3387500474⟧
скинь инн ⟦INN:715331420441⟧ в бухгалтерию
вот ⟦INN:707851913056⟧ это мой инн
инн ⟦INN:4839548620⟧ поставщика
СНИЛС ⟦SNILS:762-826-278 33⟧
снилс ⟦SNILS:83981246749⟧ для госуслуг
мой снилс: ⟦SNILS:824-069-712 05⟧
номер снилс ⟦SNILS:66812039908⟧
SNILS ⟦SNILS:825-900-367 03⟧ for the HR form
⟦SNILS:547-717-122 08⟧ это снилс мамы
паспорт ⟦PASSPORT:4510 123456⟧
серия ⟦PASSPORT:4012 номер 556677⟧ выдан в 2015
passport ⟦PASSPORT:4516 734921⟧ for the booking
паспортные данные: ⟦PASSPORT:40 17 882310⟧
скан паспорта ⟦PASSPORT:4519 001122⟧ в почте
мой паспорт ⟦PASSPORT:4608 345912⟧, прописка питер
счёт ⟦ACCOUNT:40817810099910004312⟧ в сбере
номер счета ⟦ACCOUNT:40817 810 5 3827 0001234⟧
переведи на ⟦ACCOUNT:40702810500000012345⟧ это ип
account ⟦ACCOUNT:40817810300012345678⟧ for the transfer
реквизиты: р/с ⟦ACCOUNT:40702810938000012345⟧
вот токен бота ⟦SECRET:6012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1⟧
⟦SECRET:7722334455:AAF-xYz_0123456789abcdefghijklmnopq⟧ это от тестового бота
use ⟦SECRET:sk-proj-Ab3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI⟧ for now
ключ ⟦SECRET:sk-4f8Xk2Lq9Zp1Vt6Rb3Nm7Cw5Hy0Ju8Ds⟧ не свети
github token ⟦SECRET:ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8⟧
⟦SECRET:glpat-Xy7Zq2Wv9Ur4Ts1Pq6No⟧ для ci
aws ⟦SECRET:AKIAIOSFODNN7EXAMPLE⟧ и секрет в личке
maps key ⟦SECRET:AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q⟧
slack ⟦SECRET:xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp⟧
stripe ⟦SECRET:sk_live_51HxYzAbCdEfGh12345678⟧ только прод
jwt ⟦SECRET:eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U⟧
мой btc ⟦WALLET:bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh⟧
скинь на ⟦WALLET:1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2⟧
eth ⟦WALLET:0x52908400098527886E0F7030069857D2E4169EE7⟧ thx
usdt trc20 ⟦WALLET:TNPeeaaFB7K9cmo4uQpcU32zGK8G1NYqeL⟧
tron ⟦WALLET:TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7⟧ это мой
ton ⟦WALLET:UQBvW8Z5huBkMJYdnfAEM5JqTNkuWX3diqYENkWsIL0XggGG⟧ для чаевых
old wallet ⟦WALLET:3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy⟧ don't use
сид фраза ⟦SEED:blame mosquito hotel dance refuse evil cage swim air output zero equal⟧
backup: ⟦SEED:isolate dawn segment poverty keep punch armed tape afford rain dove cause⟧
⟦SEED:sad never jungle practice smoke consider tumble loan clever human kitten work wine immense ivory color jeans protect decline lock asthma outdoor never frame⟧
мнемоника ⟦SEED:marine movie enable giggle squirrel naive penalty detail minimum enrich alarm match⟧ сохрани
seed is ⟦SEED:dice kitchen stool agent mail betray decrease love video boring autumn dose lock grunt busy⟧
заходи в чат ⟦URL:t.me/+AbCdEfGh12⟧
паспорт ⟦PASSPORT:4021 567812⟧ выдан 2019
ссылка ⟦URL:t.me/joinchat/AAAAAE1bZkQ8cLw2⟧ только для своих
invite ⟦URL:telegram.me/+Zx9Yw8Vu7Ts6⟧ to the group
⟦URL:https://t.me/+q1W2e3R4t5Y6⟧ вот приглашение
живу на ⟦ADDRESS:ул. Ленина, д. 5, кв. 12⟧
адрес: ⟦ADDRESS:улица Марата 14, кв. 3⟧
приезжай на ⟦ADDRESS:Невский пр. 28, кв 15⟧
доставка на ⟦ADDRESS:пр. Просвещения, д. 87 к. 2, кв. 104⟧
мой адрес ⟦ADDRESS:наб. Фонтанки 54, кв. 7⟧
⟦ADDRESS:переулок Гривцова, дом 6, квартира 21⟧ — это у канала
я на ⟦ADDRESS:д. 12, кв. 45⟧, домофон не работает
I live at ⟦ADDRESS:221B Baker Street, Apt 4⟧
ship it to ⟦ADDRESS:742 Evergreen Terrace Road⟧ please
new place: ⟦ADDRESS:15 Rua Augusta Street, Flat 2B⟧
my address is ⟦ADDRESS:1600 Pennsylvania Avenue⟧ lol
send the keys to ⟦ADDRESS:48 Green Lane, Unit 3⟧
"""

EXTENDED_LOOK_ALIKES = """
код 200 от сервера
error code 404, page not found
промокод SALE20 на кофе
код региона 78
в коде 2024 года есть баг
the code is on github, version 2.4.1
code review at 15:30
этот код работает с 2019
пин-код забыл, сброшу
мой инн сейчас найду
ИНН 3402554414 неверный, перепроверь
инн 439792455174 — опечатка
снилс 85005487697 не подходит, там ошибка
номер 56977720369 не тот
паспорт продлила наконец
серия игр вышла в 2015
passport photo booth on 5th
на счёт погоды: +15 завтра
счёт 2:1 в нашу пользу
номер заказа 40817810
трек-номер RA123456789RU
сумма 12 500 000 руб за квартиру
tx id 9f2c1e7a, подтверждение в пути
token bucket limit 100 rps
ключ от квартиры у соседки
the key is under the mat
sk-8 это скейт-парк
bc1 это не адрес, просто тег
0x1f это 31 в hex
T-34 в музее
wallet с картами забыл дома
fonds 123456789 не номер телефона, а счётчик
abandon ship, we are leaving now
the word list has 2048 words in it
seed the database with test data
I love you more than words can say, honestly and truly
ссылка на канал t.me/durov
t.me/twin_support для вопросов
www.example.org/about
улица разбитых фонарей
на Невском пробки
пр. 5 из списка
дом 2 на районе лучший
кв. 3 это квартал три
квартира огонь, переезжаем
we live on Baker Street now
5 Guys Burgers is on the corner
Street Fighter 2 Turbo
Road 66 trip next summer
Apartment hunting again
Unit 4 exam tomorrow
в 7 у метро
встреча в 18:00
версия 3.12.4
120 км до дачи
3 из 10
1337 очков
1.000.000 просмотров
номер рейса SU 1402
артикул 40817810 на складе
счёт в банке открыла
пароль от вайфая скажу лично
токен от бота потом дам
ключ API в 1password
адрес скину позже
живу в центре
код от подъезда не помню
код 1984 это роман, не пароль
the code was written in 2021
eth gas 0x12 gwei
адрес почты тот же
дом 5 по улице, но не скажу какой
"""

# Written after the second round of detectors was finished, and not tuned against:
# what benchmarks/pii_eval.py reports for it is the honest estimate.
EXTENDED_HELDOUT = """
код для входа ⟦CODE:661203⟧
your login code ⟦CODE:5527⟧
вот инн ип ⟦INN:933099934133⟧
ИНН компании ⟦INN:2889093100⟧ в шапке
снилс ⟦SNILS:766 201 842 46⟧
паспорт серия ⟦PASSPORT:4011 номер 903218⟧
на р/с ⟦ACCOUNT:40802810700000098765⟧
bot token ⟦SECRET:5500112233:AAGk1Qw2Er3Ty4Ui5Op6As7Df8Gh9Jk0Lz1X⟧
⟦SECRET:ghp_Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9Oo8⟧ в env положи
кошелёк ⟦WALLET:0xAb5801a7D398351b8bE11C439e05C5B3259aeC9B⟧
⟦WALLET:bc1q9h7garjdr9ff8qh8uke8z5mjyp3q5arfq4qk72⟧ для доната
seed ⟦SEED:legal winner thank year wave sausage worth useful legal winner thank yellow⟧
залетай ⟦URL:t.me/+Pq8Rs7Tu6Vw5⟧
адрес ⟦ADDRESS:ул. Рубинштейна, д. 23, кв. 9⟧
we moved to ⟦ADDRESS:12 Oak Street, Apt 7⟧
код 404 опять
в 2023 коде не было тестов
инн потом
passport renewal takes 3 weeks
счёт 3:0, красавцы
0xdeadbeef это магия
t.me/s/channel_preview
на улице +25
квартира 50 метров
Baker Street station is closed
"""

# The forms an audit found reaching samples: passwords said without ':' or '=', a
# passphrase of several words, a lower-case IBAN, a card typed over two messages of one
# burst (⏎ joins them as the dataset joins a burst); and what looks like them and is not.
AUDIT = """
пароль ⟦SECRET:qwerty123⟧
мой пароль от вайфая ⟦SECRET:qwerty123⟧
password is ⟦SECRET:hunter2⟧
pass ⟦SECRET:hunter2⟧
пароль: ⟦SECRET:correct horse⟧
password: ⟦SECRET:correct horse battery staple⟧
пароль от почты ⟦SECRET:Kostya_1995⟧, не забудь
wifi password is ⟦SECRET:Lisboa2024!⟧
пароль — ⟦SECRET:kofe4ever⟧
мой пароль это ⟦SECRET:zima2025⟧
the password is ⟦SECRET:tr0ub4dor&3⟧ btw
pwd ⟦SECRET:S3cure!pass⟧
пасс ⟦SECRET:vetrov88⟧
пароль от ноута ⟦SECRET:Bass-guitar7⟧ если что
новый пароль ⟦SECRET:Gr1sha_bass⟧
пароль: ⟦SECRET:синий кит⟧, запомни
переведи на ⟦IBAN:de89 3704 0044 0532 0130 00⟧
iban ⟦IBAN:gb82west12345698765432⟧ thanks
карта ⟦CARD:4111 1111⏎1111 1111⟧
номер карты ⟦CARD:5555 5555 5555⏎4444⟧ на имя Кости
пароль ⟦SECRET:1234⟧ от сейфа
"""
AUDIT_LOOK_ALIKES = """
пароль забыл
какой пароль от вайфая?
password is wrong again
pass me the salt
I'll pass on that
пароль поменял вчера
pass the 2024 exam first
пароль от вайфая на роутере написан
the password is on the fridge
пароль 8 символов минимум
pass 3 levels and you win
pass 1000 rubles to Anna tomorrow
de89 это не iban
сдал 4276 3800 рублей⏎и ещё 1234
в 2024⏎было 5678 подписчиков
"""

_MARK = re.compile(r"⟦(\w+):(.+?)⟧", re.DOTALL)


def cases(text: str | None = None) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(input, expected scrubbed text, [(type, value), ...]) for every line of the set."""
    out = []
    for line in (text or POSITIVES + NEGATIVES).strip().splitlines():
        line = line.replace("⏎", "\n")  # two messages of one burst, joined
        labels = [(m.group(1), m.group(2)) for m in _MARK.finditer(line)]
        text = _MARK.sub(lambda m: m.group(2), line)
        expected = _MARK.sub(lambda m: f"[{m.group(1)}]", line)
        out.append((text, expected, labels))
    return out
